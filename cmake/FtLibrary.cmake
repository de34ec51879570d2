# libft: everything but the executables. Sources are globbed per folder so that adding a file to
# kernels/, runtime/, parallel/ or models/ needs no edit here.
# Every .proto under runtime/ is compiled into libft (generated into build/generated/<same path>).
file(GLOB_RECURSE FT_PROTOS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/runtime/*.proto)
set(FT_PROTO_OUT ${PROJECT_BINARY_DIR}/generated)
set(FT_PROTO_SOURCES)
foreach(proto ${FT_PROTOS})
  file(RELATIVE_PATH relative ${PROJECT_SOURCE_DIR} ${proto})
  string(REGEX REPLACE "\\.proto$" "" stem ${relative})
  get_filename_component(folder ${relative} DIRECTORY)
  file(MAKE_DIRECTORY ${FT_PROTO_OUT}/${folder})
  add_custom_command(
    OUTPUT ${FT_PROTO_OUT}/${stem}.pb.cc ${FT_PROTO_OUT}/${stem}.pb.h
    COMMAND protobuf::protoc --cpp_out=${FT_PROTO_OUT} -I ${PROJECT_SOURCE_DIR} ${proto}
    DEPENDS ${proto} protobuf::protoc
    COMMENT "protoc ${relative}")
  list(APPEND FT_PROTO_SOURCES ${FT_PROTO_OUT}/${stem}.pb.cc)
endforeach()

file(GLOB_RECURSE FT_CXX_SOURCES CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/kernels/*.cpp ${PROJECT_SOURCE_DIR}/runtime/*.cpp
  ${PROJECT_SOURCE_DIR}/parallel/*.cpp ${PROJECT_SOURCE_DIR}/models/*.cpp)
add_library(ft STATIC ${FT_CXX_SOURCES} ${FT_PROTO_SOURCES})
target_include_directories(ft PUBLIC ${PROJECT_SOURCE_DIR} ${FT_PROTO_OUT} ${HDF5_C_INCLUDE_DIRS})
# ft speaks MPI's C API only (MPI::MPI_C): keep <mpi.h> from pulling in the C++ bindings, whose
# inline code references libmpi_cxx symbols that nothing links.
target_compile_definitions(ft PUBLIC ${HDF5_C_DEFINITIONS} OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
target_link_libraries(ft PUBLIC
  protobuf::libprotobuf yaml-cpp nlohmann_json::nlohmann_json fmt::fmt CLI11::CLI11
  MPI::MPI_C ${HDF5_C_LIBRARIES} ft_openblas OpenMP::OpenMP_CXX Threads::Threads
  PkgConfig::FT_PCRE2 PkgConfig::FT_ICU_UC)
target_compile_options(ft PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
if(FT_NATIVE)
  target_compile_options(ft PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()

if(FT_WITH_CUDA)
  file(GLOB_RECURSE FT_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/cuda/*.cu)
  target_sources(ft PRIVATE ${FT_CUDA_SOURCES})
  target_compile_definitions(ft PUBLIC FT_WITH_CUDA=1)
  target_link_libraries(ft PUBLIC CUDA::cudart CUDA::cublas CUDA::cublasLt)
  # NCCL (parallel/nccl_communicator.cpp): shipped with the CUDA toolkit here, or installed beside
  # it (libnccl-dev); FT_NCCL_ROOT points elsewhere.
  set(FT_NCCL_ROOT "" CACHE PATH "Where NCCL is installed, when not with the CUDA toolkit")
  find_path(FT_NCCL_INCLUDE_DIR nccl.h
            HINTS ${FT_NCCL_ROOT}/include ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  find_library(FT_NCCL_LIBRARY nccl
               HINTS ${FT_NCCL_ROOT}/lib ${FT_NCCL_ROOT}/lib64 ${CUDAToolkit_LIBRARY_DIR}
                     /usr/local/cuda/lib64 /usr/local/cuda/lib
                     /usr/local/cuda/targets/x86_64-linux/lib)
  if(NOT FT_NCCL_INCLUDE_DIR OR NOT FT_NCCL_LIBRARY)
    message(FATAL_ERROR "CUDA build without NCCL: nccl.h (${FT_NCCL_INCLUDE_DIR}) or libnccl "
                        "(${FT_NCCL_LIBRARY}) not found; install NCCL or set FT_NCCL_ROOT")
  endif()
  message(STATUS "ft: NCCL ${FT_NCCL_LIBRARY}")
  target_include_directories(ft PUBLIC ${FT_NCCL_INCLUDE_DIR})
  target_link_libraries(ft PUBLIC ${FT_NCCL_LIBRARY})
  set_target_properties(ft PROPERTIES CUDA_SEPARABLE_COMPILATION OFF)
endif()
