// Resource files block by block (header-only, toml++; plugin ABI 2.0).
//
// A state file (sluice/resources.hpp) is a list of [[kind]] tables. Cut at
// its `[[kind]]` header lines it is a list of blocks, one resource each. Who
// keeps the blocks of a file's previous version (sluiced's router, the nat
// plugin) compares them by text with the new version's, parses only the
// blocks in between the unchanged ones at both ends, and keeps what it read
// from the others: one service changed in a file of 10,000 costs one
// service, not the file.
//
//   auto blocks = sluice::config::split_resource_blocks(file.text);
//   if (!blocks) -> parse the whole file (sluice::config::parse), as always
//   auto same = sluice::config::unchanged_ends(old_blocks, *blocks);
//   for each new block between same.before and same.after:
//     auto parsed = sluice::config::parse_resource_block(block, file.path);
//     if (!parsed) -> parse the whole file: it gives the real error or result
//     read parsed->table(): positions and key paths as in the whole file
//
// When a block parsed alone means what it means in the whole file
// -----------------------------------------------------------------
// Blocks are cut at every line that is an array-of-tables header of one bare
// key (`[[service]]`, blanks around the key and the brackets, an optional
// trailing comment, LF or CRLF). Parsing the blocks one by one gives the
// same tables as parsing the whole file (the k-th table of kind K being the
// block of kind K and index k), and the whole file parses if every block
// does, when:
//
//   1. nothing but blank and comment lines comes before the first header
//      (they belong to the first block and are parsed with it);
//      split_resource_blocks() checks this and otherwise says "not
//      splittable" (nullopt); so does a file without any header but comments
//      (no blocks to carry them; the whole-file parse of such a file is
//      cheap anyway);
//   2. every block parses alone, and its root holds exactly one key, its
//      kind, whose value is an array of exactly one table;
//      parse_resource_block() checks this and otherwise returns nullopt.
//
// Why that is enough: a block that parses alone ends outside any string,
// array or inline table, so in the whole file the next block's header line
// is read as a header too (by induction from the file's start, every cut is
// at the top level). Within the whole file a block's lines can only reach
// beyond its own [[kind]] table through a header naming another root key
// (`[other]`, `[[other.x]]`: refused by "exactly one key") or a second
// [[kind]] spelled so the cut does not see it (`[["service"]]`, `[[ "service"
// ]]`: refused by "exactly one table"); `[kind.sub]` and `[[kind.list]]`
// apply to the last table of the kind, which is the block's own in both
// parses. A header-like line inside a multi-line string or array (`"""`,
// `'''`, `[`) cuts that value, so the earlier block ends in an unterminated
// value and does not parse alone: the caller falls back to the whole file,
// which gives the real result or the real error. A kept block (same text as
// in the previous version) was checked then; the check depends on its text
// alone.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include <sluice/config.hpp>

namespace sluice::config {

struct ResourceBlock {
  std::string_view kind;          // the key of its [[kind]] header
  std::uint32_t first_line = 1;   // line of its first character in the file (1-based)
  std::uint32_t index = 0;        // its table is kind[index] in a whole-file parse
  // From its header line (from the file's start for the first block: the
  // comments before the first header are its) up to the next header line.
  std::string_view text;
};

namespace detail {

inline bool is_blank(char c) { return c == ' ' || c == '\t'; }

inline bool is_bare_key_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-';
}

inline std::size_t skip_blanks(std::string_view line, std::size_t at) {
  while (at < line.size() && is_blank(line[at])) ++at;
  return at;
}

// The kind of a `[[kind]]  # comment` line (without its line end), or "".
inline std::string_view array_table_header_kind(std::string_view line) {
  std::size_t at = skip_blanks(line, 0);
  if (line.substr(at, 2) != "[[") return {};
  at = skip_blanks(line, at + 2);
  std::size_t key_begin = at;
  while (at < line.size() && is_bare_key_char(line[at])) ++at;
  std::string_view kind = line.substr(key_begin, at - key_begin);
  at = skip_blanks(line, at);
  if (kind.empty() || line.substr(at, 2) != "]]") return {};
  at = skip_blanks(line, at + 2);
  return at == line.size() || line[at] == '#' ? kind : std::string_view{};
}

inline bool is_blank_line(std::string_view line) { return skip_blanks(line, 0) == line.size(); }

inline bool is_comment_line(std::string_view line) {
  std::size_t at = skip_blanks(line, 0);
  return at < line.size() && line[at] == '#';
}

// Newlines in `text`. A state file may hold megabytes, and std::count is
// not vectorized at -O2 (GCC 12): 16 bytes at a time is 6x faster (0.3 ms
// for 5.7 MB). A byte counter holds up to 255 matches, hence the rounds.
inline std::uint32_t count_newlines(std::string_view text) {
  typedef unsigned char Bytes16 __attribute__((vector_size(16)));
  std::size_t count = 0, at = 0;
  while (at + 16 <= text.size()) {
    Bytes16 in_round = {};
    const std::size_t round_end = std::min(text.size() - 15, at + 255 * 16);
    for (; at < round_end; at += 16) {
      Bytes16 bytes;
      std::memcpy(&bytes, text.data() + at, sizeof(bytes));
      in_round -= reinterpret_cast<Bytes16>(bytes == '\n');  // a match is all ones: -1
    }
    for (int lane = 0; lane < 16; ++lane) count += in_round[lane];
  }
  for (; at < text.size(); ++at) count += text[at] == '\n';
  return static_cast<std::uint32_t>(count);
}

}  // namespace detail

// The blocks of a resource file, or nullopt when it cannot be split (rule 1
// above: the caller parses the whole file). An empty or blank file has no
// blocks.
inline std::optional<std::vector<ResourceBlock>> split_resource_blocks(std::string_view text) {
  constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";
  constexpr std::size_t npos = std::string_view::npos;
  std::vector<ResourceBlock> blocks;
  std::vector<std::pair<std::string_view, std::uint32_t>> blocks_of_kind;  // few kinds
  std::size_t block_begin = 0;  // of the last block
  std::size_t counted_to = 0;   // lines are counted up to here...
  std::uint32_t line_number = 1;  // ...and this is its line
  auto begin_block = [&](std::size_t line_begin, std::string_view kind) {
    line_number += detail::count_newlines(text.substr(counted_to, line_begin - counted_to));
    counted_to = line_begin;
    if (!blocks.empty()) {
      blocks.back().text = text.substr(block_begin, line_begin - block_begin);
      block_begin = line_begin;
    }
    std::uint32_t index = 0;
    auto count = blocks_of_kind.begin();
    while (count != blocks_of_kind.end() && count->first != kind) ++count;
    if (count == blocks_of_kind.end()) blocks_of_kind.emplace_back(kind, 1);
    else index = count->second++;
    blocks.push_back({kind, blocks.empty() ? 1 : line_number, index, {}});
  };
  // The line beginning at `begin` without its end, and where the next one
  // begins (npos: none). "\r\n" ends a line; a lone "\r" is content, left for
  // the parser to refuse.
  auto line_at = [&](std::size_t begin) {
    std::size_t newline = text.find('\n', begin);
    std::string_view line = text.substr(begin, (newline == npos ? text.size() : newline) - begin);
    if (newline != npos && line.ends_with('\r')) line.remove_suffix(1);
    return std::pair{line, newline == npos ? npos : newline + 1};
  };

  // Up to the first header every line counts: blank lines and comments only.
  // A BOM is part of the first line (and so of the first block's text).
  std::size_t next_line = text.starts_with(kUtf8Bom) ? kUtf8Bom.size() : 0;
  bool prelude_has_comments = false;
  while (blocks.empty() && next_line < text.size()) {
    std::size_t line_begin = next_line;
    auto [line, next] = line_at(line_begin);
    if (std::string_view kind = detail::array_table_header_kind(line); !kind.empty())
      begin_block(line_begin, kind);
    else if (detail::is_comment_line(line)) prelude_has_comments = true;
    else if (!detail::is_blank_line(line)) return std::nullopt;  // a prelude with content
    next_line = next;
  }
  if (blocks.empty()) {
    if (prelude_has_comments) return std::nullopt;
    return blocks;
  }
  // After it only a line whose first non-blank character is '[' can be a
  // header: jump from '[' to '[' (most lines have none) instead of line by line.
  const std::size_t first_free_line = next_line;
  for (std::size_t at = next_line; at < text.size();) {
    at = text.find('[', at);
    if (at == npos) break;
    std::size_t line_begin = at;
    while (line_begin > first_free_line && detail::is_blank(text[line_begin - 1])) --line_begin;
    if (line_begin > first_free_line && text[line_begin - 1] != '\n') {
      at = text.find('\n', at);  // not first on its line: no header on it
      continue;
    }
    auto [line, next] = line_at(line_begin);
    if (std::string_view kind = detail::array_table_header_kind(line); !kind.empty())
      begin_block(line_begin, kind);
    at = next;
  }
  blocks.back().text = text.substr(block_begin);
  return blocks;
}

// How many blocks at the start and at the end of two versions of a file
// have the same text: the blocks in between are the change. `before` +
// `after` never exceeds the smaller number of blocks.
struct UnchangedEnds {
  std::size_t before = 0, after = 0;
};

// Comparing texts (memcmp) is far cheaper than hashing or parsing them.
inline UnchangedEnds unchanged_ends(const std::vector<ResourceBlock>& old,
                                    const std::vector<ResourceBlock>& now) {
  UnchangedEnds same;
  const std::size_t limit = std::min(old.size(), now.size());
  while (same.before < limit && old[same.before].text == now[same.before].text) ++same.before;
  while (same.before + same.after < limit &&
         old[old.size() - 1 - same.after].text == now[now.size() - 1 - same.after].text)
    ++same.after;
  return same;
}

// Whoever keeps a file's text to compare the next version with needs a
// buffer per version; reusing the buffer of an older version saves its page
// faults, which a fresh one of megabytes costs (~25 ms for 5.7 MB on a VM).
// Buffers get 1/8 to spare, so a file that grows a little still fits.
inline void reserve_text_buffer(std::string& buffer, std::size_t size) {
  if (buffer.capacity() < size) buffer.reserve(size + size / 8);
}

// A spare buffer for the next version of a text of `size` bytes, written
// once so that its pages are mapped now (with the first version), not on
// the file's first change.
inline std::string spare_text_buffer(std::size_t size) { return std::string(size + size / 8, '\0'); }

// One block parsed alone (parse_resource_block).
class ParsedResourceBlock {
 public:
  // The block's [[kind]] table, read as in a whole-file parse: lines are the
  // file's and the key path is kind[index] (service[4123].ports[0].port).
  Table table() const {
    return Table(root_, file_, "", line_offset_).get_table_list(kind_, index_).front();
  }
  const std::string& kind() const { return kind_; }

 private:
  friend std::optional<ParsedResourceBlock> parse_resource_block(const ResourceBlock& block,
                                                                 const std::string& file);
  toml::table root_;
  std::string kind_, file_;
  std::uint32_t index_ = 0, line_offset_ = 0;
};

// The block parsed alone, or nullopt when that might not mean what the
// block means in its file (a syntax error, or rule 2 above broken): parse
// the whole file instead, which reports the real error with its position.
inline std::optional<ParsedResourceBlock> parse_resource_block(const ResourceBlock& block,
                                                               const std::string& file) {
  ParsedResourceBlock parsed;
  try {
    parsed.root_ = toml::parse(block.text, file);
  } catch (const toml::parse_error&) {
    return std::nullopt;
  }
  const toml::array* tables = parsed.root_.get_as<toml::array>(block.kind);
  if (parsed.root_.size() != 1 || !tables || tables->size() != 1 || !tables->front().is_table())
    return std::nullopt;
  parsed.kind_ = std::string(block.kind);
  parsed.file_ = file;
  parsed.index_ = block.index;
  parsed.line_offset_ = block.first_line - 1;
  return parsed;
}

}  // namespace sluice::config
