#include "service_blocks.hpp"

#include <charconv>
#include <optional>

namespace nat {

using sluice::ConfigError;
using sluice::config::Table;

void shift(Position& at, const BlockShift& by) {
  at.line = static_cast<std::uint32_t>(at.line + by.lines);
  if (by.index == 0) return;
  // In place, without allocating: every block after an inserted one moves.
  std::size_t open = at.key.find('['), close = at.key.find(']', open);
  if (open == std::string::npos || close == std::string::npos) return;
  std::int64_t index = 0;
  std::from_chars(at.key.data() + open + 1, at.key.data() + close, index);
  char digits[24];
  char* end = std::to_chars(digits, digits + sizeof(digits), index + by.index).ptr;
  at.key.replace(open + 1, close - open - 1, digits, static_cast<std::size_t>(end - digits));
}
void shift(ServiceSpec& s, const BlockShift& by) { shift(s.at, by); }
void shift(EndpointSpec& e, const BlockShift& by) { shift(e.at, by); }


void shift(FileBlock& block, const BlockShift& by) {
  for (auto& s : block.services) shift(s, by);
  for (auto& e : block.endpoints) shift(e, by);
}

namespace {

void read_resource(std::string_view kind, const Table& table, FileBlock& into) {
  if (kind == "service") into.services.push_back(parse_service(table));
  else if (kind == "endpoint") into.endpoints.push_back(parse_endpoint(table));
}

std::unique_ptr<FileBlock> read_whole_file(const sluice::ResourceFile& file) {
  toml::table root = sluice::config::parse(file.text, file.path);
  Table top(root, file.path, "");
  auto whole = std::make_unique<FileBlock>();
  for (std::string_view kind : {"service", "endpoint"})
    for (const Table& t : top.get_table_list(kind)) read_resource(kind, t, *whole);
  return whole;
}

}  // namespace

FileChange removal_of(FileSpecs* before) {
  FileChange change;
  change.before = before;
  change.gone = true;
  return change;
}

FileChange change_of(const sluice::ResourceFile& file, FileSpecs* before) {
  FileChange change;
  change.before = before;
  // Kept if the file is read block by block: its blocks view this copy.
  std::unique_ptr<std::string> text;
  if (before) text = std::move(before->spare_text);
  if (!text) text = std::make_unique<std::string>();
  sluice::config::reserve_text_buffer(*text, file.text.size());
  text->assign(file.text);
  if (auto blocks = sluice::config::split_resource_blocks(*text)) {
    if (before && before->by_block())
      change.kept = sluice::config::unchanged_ends(before->placement, *blocks);
    // Every changed block must parse alone for any to be read alone: one
    // that does not may change what another means (resource_blocks.hpp).
    // So a bad resource is reported once all of them are known to parse.
    std::optional<ConfigError> bad_resource;
    bool by_block = true;
    const std::size_t changed_end = blocks->size() - change.kept.after;
    for (std::size_t i = change.kept.before; by_block && i < changed_end; ++i) {
      const sluice::config::ResourceBlock& at = (*blocks)[i];
      auto parsed = sluice::config::parse_resource_block(at, file.path);
      by_block = parsed.has_value();
      if (!by_block || bad_resource) continue;
      auto block = std::make_unique<FileBlock>();
      try {
        read_resource(at.kind, parsed->table(), *block);
      } catch (const ConfigError& error) {
        bad_resource = error;
      }
      change.added.push_back(std::move(block));
    }
    if (by_block) {
      if (bad_resource) throw *bad_resource;
      for (std::size_t k = 1; k <= change.kept.after; ++k) {
        const sluice::config::ResourceBlock& was = before->placement[before->placement.size() - k];
        const sluice::config::ResourceBlock& now = (*blocks)[blocks->size() - k];
        BlockShift by{static_cast<std::int64_t>(now.first_line) - was.first_line,
                      static_cast<std::int64_t>(now.index) - was.index};
        if (!by.none()) change.moved.emplace_back(before->blocks[before->blocks.size() - k].get(), by);
      }
      change.text = std::move(text);
      change.placement = std::move(*blocks);
      return change;
    }
    change.kept = {};
    change.added.clear();
  }
  change.added.push_back(read_whole_file(file));
  return change;
}

}  // namespace nat
