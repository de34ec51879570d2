#include "runtime/data/token_alignment.h"

#include <map>

namespace ft::data {

namespace {

constexpr std::string_view kMetaspace = "\u2581";

// `piece` as the tokens spell it before pre-tokenization: Unicode-normalized when the normalizer
// has a normal form, a stretch at a time (each ASCII byte starts a stretch: no composition
// reaches back over one), and inside a stretch that changes, a cluster at a time (a cluster ends
// where normalizing the two sides apart gives the same text). origin[i]: the piece bytes that
// byte i of the result comes from.
void normalize_for_alignment(std::string_view piece, std::optional<unicode::NormalForm> form,
                             std::string& text, std::vector<std::pair<size_t, size_t>>& origin) {
  text.clear();
  origin.clear();
  std::string whole, left, right;
  const auto append_cluster = [&](size_t start, size_t end) {
    unicode::normalize(*form, piece.substr(start, end - start), left);
    text.append(left);
    if (left == piece.substr(start, end - start)) {
      for (size_t i = start; i < end; ++i) origin.emplace_back(i, i + 1);
    } else {
      origin.insert(origin.end(), left.size(), {start, end});
    }
  };
  for (size_t start = 0; start < piece.size();) {
    size_t end = start + 1;
    while (end < piece.size() && static_cast<unsigned char>(piece[end]) >= 0x80) ++end;
    const std::string_view stretch = piece.substr(start, end - start);
    if (form) unicode::normalize(*form, stretch, whole);
    if (!form || whole == stretch) {
      text.append(stretch);
      for (size_t i = start; i < end; ++i) origin.emplace_back(i, i + 1);
      start = end;
      continue;
    }
    size_t cluster_start = start;
    for (size_t cut = start + 1; cut < end; ++cut) {
      if ((static_cast<unsigned char>(piece[cut]) & 0xC0) == 0x80) continue;  // inside a char
      unicode::normalize(*form, piece.substr(cluster_start, cut - cluster_start), left);
      unicode::normalize(*form, piece.substr(cut, end - cut), right);
      unicode::normalize(*form, piece.substr(cluster_start, end - cluster_start), whole);
      if (left + right == whole) {
        append_cluster(cluster_start, cut);
        cluster_start = cut;
      }
    }
    append_cluster(cluster_start, end);
    start = end;
  }
}

// Matches the surfaces of tokens [begin, end) against text[position...]: bytes match bytes, "▁"
// matches "▁" or a space; with `first_inserted`, the group's first "▁" or space is one the
// pipeline inserted and matches nothing. Writes each token's [start, stop) in `text` to `spans`
// and returns the position after the group, or nullopt when the surfaces do not fit.
std::optional<size_t> match_group(std::string_view text, size_t position,
                                  const std::vector<std::optional<std::string>>& surfaces,
                                  size_t begin, size_t end, bool first_inserted,
                                  std::vector<std::pair<size_t, size_t>>& spans) {
  spans.clear();
  bool may_insert = first_inserted;
  for (size_t t = begin; t < end; ++t) {
    const size_t start = position;
    if (!surfaces[t]) {  // the unknown token: one character
      if (position >= text.size()) return std::nullopt;
      int length = 0;
      unicode::decode_utf8(text, position, &length);
      position += length;
      may_insert = false;
    } else {
      const std::string& surface = *surfaces[t];
      for (size_t i = 0; i < surface.size();) {
        const bool metaspace = surface.compare(i, kMetaspace.size(), kMetaspace) == 0;
        const size_t unit = metaspace ? kMetaspace.size() : 1;
        if (may_insert && (metaspace || surface[i] == ' ')) {
          may_insert = false;
          i += unit;
          continue;
        }
        may_insert = false;
        if (text.compare(position, unit, surface, i, unit) == 0) {
          position += unit;
        } else if (metaspace && position < text.size() && text[position] == ' ') {
          position += 1;
        } else {
          return std::nullopt;
        }
        i += unit;
      }
    }
    spans.emplace_back(start, position);
  }
  return position;
}

}  // namespace

void align_token_offsets(std::string_view piece, size_t piece_offset,
                         std::optional<unicode::NormalForm> form,
                         const std::vector<std::optional<std::string>>& surfaces,
                         const std::vector<TokenGroup>& groups,
                         std::vector<std::pair<size_t, size_t>>& offsets) {
  if (groups.empty()) return;
  std::string text;
  std::vector<std::pair<size_t, size_t>> origin;
  normalize_for_alignment(piece, form, text, origin);
  // A token's bytes in `piece`, from its span in `text`.
  const auto piece_span = [&](size_t start, size_t stop) -> std::pair<size_t, size_t> {
    const size_t begin = start < origin.size() ? origin[start].first : piece.size();
    const size_t end = stop > start ? origin[stop - 1].second : begin;
    return {piece_offset + begin, piece_offset + end};
  };
  // Which groups start with an inserted "▁"/space: a search over (group, position) for a
  // reading that ends at the end of the text; reached[g]: position -> (previous, inserted).
  const size_t group_count = groups.size();
  std::vector<std::map<size_t, std::pair<size_t, bool>>> reached(group_count + 1);
  reached[0][0] = {0, false};
  std::vector<std::pair<size_t, size_t>> spans;
  size_t last_reached = 0;
  for (size_t g = 0; g < group_count; ++g) {
    for (const auto& [position, unused] : reached[g]) {
      for (const bool inserted : {false, true}) {
        if (const std::optional<size_t> next = match_group(
                text, position, surfaces, groups[g].begin, groups[g].end, inserted, spans)) {
          reached[g + 1].emplace(*next, std::make_pair(position, inserted));
        }
      }
    }
    if (reached[g + 1].empty()) break;
    last_reached = g + 1;
  }
  // The full reading, or (text the surfaces cannot spell: an unknown token standing for several
  // characters, stripped whitespace) the longest partial one, the rest of the piece going to each
  // remaining token.
  size_t end_position = last_reached == group_count && reached[group_count].count(text.size())
                            ? text.size()
                            : reached[last_reached].rbegin()->first;
  std::vector<std::pair<size_t, bool>> starts(last_reached);  // (position, inserted) per group
  for (size_t g = last_reached, position = end_position; g > 0; --g) {
    const auto [previous, inserted] = reached[g].at(position);
    starts[g - 1] = {previous, inserted};
    position = previous;
  }
  for (size_t g = 0; g < last_reached; ++g) {
    match_group(text, starts[g].first, surfaces, groups[g].begin, groups[g].end, starts[g].second,
                spans);
    for (const auto& [start, stop] : spans) offsets.push_back(piece_span(start, stop));
  }
  const size_t rest_begin = piece_span(end_position, text.size()).first;
  for (size_t t = last_reached < group_count ? groups[last_reached].begin : groups.back().end;
       t < groups.back().end; ++t) {
    offsets.emplace_back(rest_begin, piece_offset + piece.size());
  }
}

}  // namespace ft::data
