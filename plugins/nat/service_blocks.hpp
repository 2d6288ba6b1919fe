// State files as nat holds them, block by block (sluice/resource_blocks.hpp):
// which blocks a new version of a file removes and adds, what was read from
// each, and where kept blocks move. Pure: no maps, no kernel.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <sluice/resource_blocks.hpp>
#include <sluice/resources.hpp>

#include "endpoint_parse.hpp"
#include "service_parse.hpp"

namespace nat {


// A block kept from the previous version of its file (same text: its specs
// are reused) moves when lines, or blocks of its kind, are added or removed
// before it. Every Position a spec keeps moves with it: its line, and the
// list index its key path starts with (service[4123] -> service[4124]).
// A Position added to a spec must be shifted here.
struct BlockShift {
  std::int64_t lines = 0, index = 0;
  bool none() const { return lines == 0 && index == 0; }
  BlockShift back() const { return {-lines, -index}; }
};

void shift(Position& at, const BlockShift& by);
void shift(ServiceSpec& s, const BlockShift& by);
void shift(EndpointSpec& e, const BlockShift& by);

// What nat read from one [[kind]] block of a state file, or from a whole
// file that cannot be read block by block (sluice/resource_blocks.hpp).
struct FileBlock {
  std::vector<ServiceSpec> services;    // a block holds at most one; a whole file any
  std::vector<EndpointSpec> endpoints;  // (other kinds are other plugins')
};

void shift(FileBlock& block, const BlockShift& by);

// A state file as nat holds it. Read block by block: its text and its
// blocks (kind, first line, index and text: what the next version is
// compared with, contiguous so that comparing streams through memory), and
// what was read from each block. Otherwise (it could not be split, or a
// block could not be parsed alone): one FileBlock for the whole file.
struct FileSpecs {
  std::unique_ptr<std::string> text;                     // set when held by block
  std::vector<sluice::config::ResourceBlock> placement;  // views into *text
  std::vector<std::unique_ptr<FileBlock>> blocks;        // one per placement, or the whole file
  // The text buffer of an earlier version, reused for the next one
  // (sluice::config::spare_text_buffer() says why).
  std::unique_ptr<std::string> spare_text;
  bool by_block() const { return text != nullptr; }
};

// What a change does to one file: its blocks between the unchanged ones at
// both ends are removed, `added` take their place, and the unchanged blocks
// after them may move.
struct FileChange {
  FileSpecs* before = nullptr;  // nullptr: nat did not hold the file
  bool gone = false;            // the file is removed
  sluice::config::UnchangedEnds kept;  // of before's blocks
  std::vector<std::unique_ptr<FileBlock>> added;
  std::vector<std::pair<FileBlock*, BlockShift>> moved;  // kept blocks at a new place
  // The new version, when it is read block by block.
  std::unique_ptr<std::string> text;
  std::vector<sluice::config::ResourceBlock> placement;  // views into *text

  std::span<const std::unique_ptr<FileBlock>> removed() const {
    if (!before) return {};
    return std::span(before->blocks).subspan(kept.before,
                                             before->blocks.size() - kept.before - kept.after);
  }
};

// The change that removes a held file (before: what nat holds of it, or nullptr).
FileChange removal_of(FileSpecs* before);

// Reads only the blocks that differ from the file's previous version (all
// of them for a new file), or the whole file when it cannot be read block
// by block. Throws ConfigError for a bad resource, positioned in the file.
FileChange change_of(const sluice::ResourceFile& file, FileSpecs* before);

// Kept blocks that moved take their new place for the time of a reconcile,
// so errors name the lines and key paths of the new version; back unless
// the change is applied.
class MovedBlocks {
 public:
  explicit MovedBlocks(const std::map<std::string, FileChange>& files) {
    for (const auto& [path, change] : files)
      for (const auto& [block, by] : change.moved) {
        shift(*block, by);
        moved_.emplace_back(block, by);
      }
  }
  MovedBlocks(const MovedBlocks&) = delete;
  MovedBlocks& operator=(const MovedBlocks&) = delete;
  ~MovedBlocks() {
    if (!kept_)
      for (const auto& [block, by] : moved_) shift(*block, by.back());
  }
  void keep() { kept_ = true; }

 private:
  std::vector<std::pair<FileBlock*, BlockShift>> moved_;
  bool kept_ = false;
};

}  // namespace nat
