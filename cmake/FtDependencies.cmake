# System dependencies, all from Debian packages (tools/setup.sh installs them).
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Protobuf REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(MPI REQUIRED COMPONENTS C)

# HDF5, the Open MPI flavour (parallel HDF5 for multi-rank checkpoints).
set(HDF5_PREFER_PARALLEL ON)
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(WARNING "HDF5 is not the parallel (openmpi) flavour: install libhdf5-openmpi-dev")
endif()

# OpenBLAS, preferring the OpenMP build: a BLAS call made inside an OpenMP parallel region then
# runs on the calling thread instead of oversubscribing the cores.
find_path(FT_CBLAS_INCLUDE cblas.h
  PATHS /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/aarch64-linux-gnu/openblas-openmp
        /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas
  NO_DEFAULT_PATH)
find_path(FT_CBLAS_INCLUDE cblas.h)
find_library(FT_OPENBLAS_LIB openblas
  PATHS /usr/lib/x86_64-linux-gnu/openblas-openmp /usr/lib/aarch64-linux-gnu/openblas-openmp
  NO_DEFAULT_PATH)
find_library(FT_OPENBLAS_LIB openblas REQUIRED)
message(STATUS "ft: OpenBLAS ${FT_OPENBLAS_LIB} (cblas.h in ${FT_CBLAS_INCLUDE})")
add_library(ft_openblas INTERFACE)
target_include_directories(ft_openblas INTERFACE ${FT_CBLAS_INCLUDE})
target_link_libraries(ft_openblas INTERFACE ${FT_OPENBLAS_LIB})

# The Hugging Face tokenizer: PCRE2 runs tokenizer.json's regexes, ICU its Unicode normalizers.
find_package(PkgConfig REQUIRED)
pkg_check_modules(FT_PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(FT_ICU_UC REQUIRED IMPORTED_TARGET icu-uc)
