// dogctl's output: the admin endpoint's JSON answers as aligned tables for people. Pure
// functions (JSON in, text out), so tests can check them without a node.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dog::admin {

// Left-aligned columns separated by two spaces, one header row.
std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

// /members -> "Node  Address  Status  Incarnation  Load  HTTP" (like `serf members`).
std::string members_table(const nlohmann::json& members);
// /objects -> "Namespace  Kind  Id  Group  Sockets  Node" (ids shortened to 16 characters unless
// `full`), and a last line saying the list was cut when the answer has "truncated": true.
std::string objects_table(const nlohmann::json& objects, bool full);
// /where -> "owner: N\nhost: M" lines.
std::string where_text(const nlohmann::json& where);

}  // namespace dog::admin
