// <sluice/output.hpp>: JSON documents (nlohmann::ordered_json) print as
// sluicectl's JSON always did: keys in insertion order, two-space indent,
// integers signed and unsigned, null, and text that is not UTF-8 replaced
// rather than failing the command.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <sstream>

#include <sluice/output.hpp>

using sluice::output::Json;

TEST(Output, JsonKeepsKeyOrderAndTheIndentedLayout) {
  Json doc = Json::object();
  doc["zeta"] = 1;
  doc["alpha"] = Json::array();
  doc["counts"] = Json::array();
  doc["counts"].push_back(std::numeric_limits<std::uint64_t>::max());
  doc["counts"].push_back(-3);
  Json row = Json::object();
  row["name"] = std::string_view("cali1");
  row["up"] = true;
  row["peer"] = Json();
  doc["rows"].push_back(std::move(row));
  std::ostringstream out;
  sluice::output::print(out, doc);
  EXPECT_EQ(out.str(),
            "{\n"
            "  \"zeta\": 1,\n"
            "  \"alpha\": [],\n"
            "  \"counts\": [\n"
            "    18446744073709551615,\n"
            "    -3\n"
            "  ],\n"
            "  \"rows\": [\n"
            "    {\n"
            "      \"name\": \"cali1\",\n"
            "      \"up\": true,\n"
            "      \"peer\": null\n"
            "    }\n"
            "  ]\n"
            "}\n");
  EXPECT_EQ(sluice::output::json_text(Json::object()), "{}");
  // One line (monitor's stream), with the separators sluicectl always used.
  EXPECT_EQ(sluice::output::json_text(doc, -1),
            "{\"zeta\": 1, \"alpha\": [], \"counts\": [18446744073709551615, -3], "
            "\"rows\": [{\"name\": \"cali1\", \"up\": true, \"peer\": null}]}");
}

TEST(Output, JsonEscapesControlCharactersAndReplacesBrokenUtf8) {
  Json doc = Json::object();
  doc["text"] = std::string("a\"b\\c\n\x01 \xc3\xa9");
  EXPECT_EQ(sluice::output::json_text(doc, -1), "{\"text\": \"a\\\"b\\\\c\\n\\u0001 \xc3\xa9\"}");
  doc["text"] = std::string("eth\xff");
  EXPECT_EQ(sluice::output::json_text(doc, -1), "{\"text\": \"eth\xef\xbf\xbd\"}");
}
