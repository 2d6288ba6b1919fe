// sluice/resource_blocks.hpp: cutting resource files into [[kind]] blocks,
// and the rule that says when a block parsed alone means what it means in
// the whole file.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <sluice/resource_blocks.hpp>

using namespace sluice::config;

namespace {

const std::string kFile = "/state/x.toml";

std::vector<std::string> texts(const std::vector<ResourceBlock>& blocks) {
  std::vector<std::string> out;
  for (const auto& b : blocks) out.emplace_back(b.text);
  return out;
}

// True when the file splits, every block parses alone, and each block's
// table equals (values, first line, key path) the one a whole-file parse
// gives for its kind and index; false when a block does not parse alone.
// Fails the test when the file splits into blocks that parse alone but mean
// something else than the whole file: the rule must never allow that.
bool parses_block_by_block(const std::string& text) {
  auto blocks = split_resource_blocks(text);
  if (!blocks) return false;
  std::string joined;
  for (const auto& b : *blocks) joined += b.text;
  EXPECT_EQ(joined, text) << "the blocks do not cover the file";
  std::vector<ParsedResourceBlock> parsed;
  for (const auto& b : *blocks) {
    auto p = parse_resource_block(b, kFile);
    if (!p) return false;
    parsed.push_back(std::move(*p));
  }
  toml::table root = parse(text, kFile);
  Table whole(root, kFile, "");
  std::size_t tables = 0;
  for (const auto& [key, node] : root) tables += node.is_array() ? node.as_array()->size() : 1;
  EXPECT_EQ(tables, blocks->size()) << "the whole file holds other tables than the blocks";
  for (std::size_t i = 0; i < blocks->size(); ++i) {
    Table alone = parsed[i].table();
    auto list = whole.get_table_list((*blocks)[i].kind);
    EXPECT_LT((*blocks)[i].index, list.size());
    if ((*blocks)[i].index >= list.size()) continue;
    const Table& in_file = list[(*blocks)[i].index];
    EXPECT_EQ(alone.raw(), in_file.raw()) << "block " << i << " parsed alone differs";
    EXPECT_EQ(alone.where(nullptr), in_file.where(nullptr)) << "block " << i;
    EXPECT_EQ(alone.path(), in_file.path());
  }
  return true;
}

}  // namespace

TEST(ResourceBlocks, CutsAtArrayTableHeadersWithKindLineAndIndex) {
  const std::string text =
      "# services of the shop\n"          // 1: goes with the first block
      "\n"                                 // 2
      "[[service]]\n"                      // 3
      "name = \"web\"\n"                   // 4
      "ports = [{ port = 80 }]\n"          // 5
      "  [[ endpoint ]]   # a pod\n"       // 6
      "name = \"pod\"\n"                   // 7
      "[[service]]\n"                      // 8
      "name = \"db\"\n"                    // 9
      "[[service.ports]]\n"                // 10: the block's own list, not a cut
      "port = 5432\n";                     // 11
  auto blocks = split_resource_blocks(text);
  ASSERT_TRUE(blocks);
  ASSERT_EQ(blocks->size(), 3u);
  EXPECT_EQ((*blocks)[0].kind, "service");
  EXPECT_EQ((*blocks)[0].first_line, 1u);
  EXPECT_EQ((*blocks)[0].index, 0u);
  EXPECT_EQ((*blocks)[1].kind, "endpoint");
  EXPECT_EQ((*blocks)[1].first_line, 6u);
  EXPECT_EQ((*blocks)[1].index, 0u);
  EXPECT_EQ((*blocks)[2].kind, "service");
  EXPECT_EQ((*blocks)[2].first_line, 8u);
  EXPECT_EQ((*blocks)[2].index, 1u);
  EXPECT_EQ(texts(*blocks),
            (std::vector<std::string>{
                "# services of the shop\n\n[[service]]\nname = \"web\"\nports = [{ port = 80 }]\n",
                "  [[ endpoint ]]   # a pod\nname = \"pod\"\n",
                "[[service]]\nname = \"db\"\n[[service.ports]]\nport = 5432\n"}));
  EXPECT_TRUE(parses_block_by_block(text));
}

TEST(ResourceBlocks, ABlockReadsWithTheWholeFilesLinesAndKeyPaths) {
  std::string text;
  for (int i = 0; i < 5; ++i)
    text += "[[service]]\nname = \"s" + std::to_string(i) + "\"\n\nports = [{ port = 80 }, " +
            (i == 3 ? "{ port = 0 }" : "{ port = 81 }") + "]\n";
  auto blocks = split_resource_blocks(text);
  ASSERT_TRUE(blocks);
  ASSERT_EQ(blocks->size(), 5u);
  auto parsed = parse_resource_block((*blocks)[3], kFile);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->kind(), "service");
  Table alone = parsed->table();
  EXPECT_EQ(alone.path(), "service[3]");
  EXPECT_EQ(alone.where(nullptr).line, 13u);

  // The same error read from the block and from the whole file.
  auto error_of = [](const Table& service) {
    try {
      service.get_table_list("ports")[1].get_int("port", 0, 1, 65535);
    } catch (const sluice::ConfigError& e) {
      return std::to_string(e.line) + ":" + std::to_string(e.column) + " " + e.key;
    }
    return std::string("no error");
  };
  toml::table root = parse(text, kFile);
  Table whole(root, kFile, "");
  EXPECT_EQ(error_of(alone), "16:34 service[3].ports[1].port");
  EXPECT_EQ(error_of(alone), error_of(whole.get_table_list("service")[3]));
  // A table below the block's (table()) keeps the offset as well.
  EXPECT_EQ(alone.get_table_list("ports")[0].where(nullptr).line, 16u);
}

TEST(ResourceBlocks, AHeaderLikeLineInAMultiLineStringForcesTheWholeFile) {
  for (const char* quotes : {"\"\"\"", "'''"}) {
    std::string text = std::string("[[note]]\ntext = ") + quotes +
                       "\nthe line below is text\n[[service]]\nname = \"fake\"\n" + quotes +
                       "\n[[service]]\nname = \"real\"\n";
    auto blocks = split_resource_blocks(text);
    ASSERT_TRUE(blocks) << quotes;
    ASSERT_EQ(blocks->size(), 3u) << "the cut does not know about strings";
    EXPECT_FALSE(parse_resource_block((*blocks)[0], kFile))
        << quotes << ": the block before the cut ends in an unterminated string";
    EXPECT_FALSE(parses_block_by_block(text));
    toml::table root = parse(text, kFile);
    EXPECT_EQ(root["service"].as_array()->size(), 1u) << "one real service";
  }
  // The same with a multi-line array.
  std::string text = "[[service]]\nname = \"a\"\nlist = [\n[[1]]\n]\n";
  auto blocks = split_resource_blocks(text);
  ASSERT_TRUE(blocks);
  ASSERT_EQ(blocks->size(), 2u);
  EXPECT_FALSE(parse_resource_block((*blocks)[0], kFile));
  EXPECT_FALSE(parses_block_by_block(text));
}

TEST(ResourceBlocks, ABlockReachingBeyondItsTableForcesTheWholeFile) {
  // [other] in a block: in the whole file it is a root table, not part of the service.
  std::string text = "[[service]]\nname = \"a\"\n[other]\nx = 1\n[[service]]\nname = \"b\"\n";
  auto blocks = split_resource_blocks(text);
  ASSERT_TRUE(blocks);
  ASSERT_EQ(blocks->size(), 2u);
  EXPECT_FALSE(parse_resource_block((*blocks)[0], kFile));
  EXPECT_TRUE(parse_resource_block((*blocks)[1], kFile));
  EXPECT_FALSE(parses_block_by_block(text));

  // A second [[service]] the cut does not see (quoted key): two tables in one block.
  for (const char* header : {"[[\"service\"]]", "[[ 'service' ]]"}) {
    text = std::string("[[service]]\nname = \"a\"\n") + header + "\nname = \"b\"\n[[service]]\nname = \"c\"\n";
    blocks = split_resource_blocks(text);
    ASSERT_TRUE(blocks);
    ASSERT_EQ(blocks->size(), 2u) << header;
    EXPECT_FALSE(parse_resource_block((*blocks)[0], kFile)) << header;
    EXPECT_FALSE(parses_block_by_block(text));
  }

  // Dotted and sub-table headers of the block's own kind are its own.
  text = "[[service]]\nname = \"a\"\n[service.labels]\napp = \"web\"\n[[service.ports]]\nport = 80\n"
         "[[service]]\nname = \"b\"\n";
  EXPECT_TRUE(parses_block_by_block(text));
}

TEST(ResourceBlocks, APreludeWithContentIsNotSplittable) {
  EXPECT_FALSE(split_resource_blocks("version = 1\n[[service]]\nname = \"a\"\n"));
  EXPECT_FALSE(split_resource_blocks("[defaults]\nnamespace = \"x\"\n[[service]]\nname = \"a\"\n"));
  EXPECT_FALSE(split_resource_blocks("[[service.ports]]\nport = 1\n[[service]]\nname = \"a\"\n"));
  EXPECT_FALSE(split_resource_blocks("[[\"service\"]]\nname = \"a\"\n"));
  // Blank lines and comments are fine.
  EXPECT_TRUE(parses_block_by_block("\n  \t\n# a comment\n   # another\n[[service]]\nname = \"a\"\n"));
}

TEST(ResourceBlocks, EmptyAndCommentOnlyFiles) {
  auto empty = split_resource_blocks("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  auto blank = split_resource_blocks("\n \n\t\r\n");
  ASSERT_TRUE(blank);
  EXPECT_TRUE(blank->empty());
  // No block to parse the comments with: the whole (small) file is parsed.
  EXPECT_FALSE(split_resource_blocks("# nothing yet\n"));
  EXPECT_FALSE(split_resource_blocks("\n# nothing yet"));
}

TEST(ResourceBlocks, CrlfLinesByteOrderMarkAndLoneCarriageReturns) {
  std::string text = "# shop\r\n[[service]]\r\nname = \"a\"\r\n[[service]] # b\r\nname = \"b\"\r\n";
  auto blocks = split_resource_blocks(text);
  ASSERT_TRUE(blocks);
  ASSERT_EQ(blocks->size(), 2u);
  EXPECT_EQ((*blocks)[1].first_line, 4u);
  EXPECT_EQ((*blocks)[1].text, "[[service]] # b\r\nname = \"b\"\r\n");
  EXPECT_TRUE(parses_block_by_block(text));

  text = "\xEF\xBB\xBF[[service]]\nname = \"a\"\n[[service]]\nname = \"b\"\n";
  blocks = split_resource_blocks(text);
  ASSERT_TRUE(blocks);
  ASSERT_EQ(blocks->size(), 2u);
  EXPECT_TRUE((*blocks)[0].text.starts_with("\xEF\xBB\xBF"));
  EXPECT_TRUE(parses_block_by_block(text));

  // "\r" not followed by "\n" ends no line: not a header, and content in a prelude.
  blocks = split_resource_blocks("[[service]]\nname = \"a\"\n[[service]]\r");
  ASSERT_TRUE(blocks);
  EXPECT_EQ(blocks->size(), 1u);
  EXPECT_FALSE(split_resource_blocks("\r[[service]]\n"));
}

TEST(ResourceBlocks, HeaderLinesAreOneBareKeyWithBlanksAndAComment) {
  auto kinds = [](const std::string& text) {
    std::vector<std::string> out;
    if (auto blocks = split_resource_blocks(text))
      for (const auto& b : *blocks) out.emplace_back(b.kind);
    return out;
  };
  using Kinds = std::vector<std::string>;
  EXPECT_EQ(kinds("[[a]]\n\t[[ b-2_x ]]\t#c\n[[c]]#\n"), (Kinds{"a", "b-2_x", "c"}));
  // Not headers (so part of the block before): dotted, quoted, a table, text after.
  EXPECT_EQ(kinds("[[a]]\n[[a.b]]\n[[\"b\"]]\n[b]\n[[b]] x\n[ [b]]\n[[b]\n[[]]\n"), Kinds{"a"});
}

TEST(ResourceBlocks, UnchangedEndsAreComparedByText) {
  auto old = *split_resource_blocks("[[s]]\na = 1\n[[s]]\na = 2\n[[s]]\na = 3\n[[s]]\na = 4\n");
  auto same = unchanged_ends(old, old);
  EXPECT_EQ(same.before + same.after, 4u);

  // One block changed in the middle.
  auto now = *split_resource_blocks("[[s]]\na = 1\n[[s]]\na = 20\n[[s]]\na = 3\n[[s]]\na = 4\n");
  same = unchanged_ends(old, now);
  EXPECT_EQ(same.before, 1u);
  EXPECT_EQ(same.after, 2u);

  // A block inserted: the ones after it are kept (they moved by a line and an index).
  now = *split_resource_blocks("[[s]]\na = 1\n[[s]]\na = 9\n\n[[s]]\na = 2\n[[s]]\na = 3\n[[s]]\na = 4\n");
  same = unchanged_ends(old, now);
  EXPECT_EQ(same.before, 1u);
  EXPECT_EQ(same.after, 3u);
  EXPECT_EQ(now[2].first_line, old[1].first_line + 3);
  EXPECT_EQ(now[2].index, old[1].index + 1);

  // Repeated texts never count twice.
  auto repeated = *split_resource_blocks("[[s]]\n[[s]]\n[[s]]\n");
  auto fewer = *split_resource_blocks("[[s]]\n[[s]]\n");
  same = unchanged_ends(repeated, fewer);
  EXPECT_EQ(same.before + same.after, 2u);
}

TEST(ResourceBlocks, FirstLinesAreRightInLongFiles) {
  // Blocks of many sizes (counted 16 bytes at a time, in rounds of 255).
  std::string text;
  std::vector<std::uint32_t> expected;
  for (int i = 0; i < 60; ++i) {
    expected.push_back(static_cast<std::uint32_t>(std::count(text.begin(), text.end(), '\n') + 1));
    text += "[[service]]\nname = \"s" + std::to_string(i) + "\"\n";
    for (int line = 0; line < i * i; ++line)
      text += "# " + std::string(static_cast<std::size_t>((line * 7 + i) % 90), 'x') + "\n";
  }
  auto blocks = split_resource_blocks(text);
  ASSERT_TRUE(blocks);
  ASSERT_EQ(blocks->size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ((*blocks)[i].first_line, expected[i]) << i;
}
