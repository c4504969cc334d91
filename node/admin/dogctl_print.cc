#include "node/admin/dogctl_print.h"

#include <algorithm>

namespace dog::admin {

namespace {

std::string str(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  const auto& v = j.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string shorten(const std::string& id, bool full) { return full || id.size() <= 16 ? id : id.substr(0, 16); }

}  // namespace

std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& r : rows)
    for (size_t c = 0; c < header.size() && c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t c = 0; c < header.size(); ++c) {
      const std::string cell = c < cells.size() ? cells[c] : "";
      l += cell;
      if (c + 1 < header.size()) l += std::string(width[c] - cell.size() + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  return out;
}

std::string members_table(const nlohmann::json& members) {
  std::vector<std::vector<std::string>> rows;
  if (members.contains("members"))
    for (const auto& m : members.at("members"))
      rows.push_back({str(m, "name"), str(m, "address"), str(m, "state"), str(m, "incarnation"), str(m, "load"),
                      str(m, "http")});
  return table({"Node", "Address", "Status", "Incarnation", "Load", "HTTP"}, rows);
}

std::string objects_table(const nlohmann::json& objects, bool full) {
  std::vector<std::vector<std::string>> rows;
  if (objects.contains("objects"))
    for (const auto& o : objects.at("objects"))
      rows.push_back({str(o, "namespace"), str(o, "kind"), shorten(str(o, "id"), full),
                      shorten(str(o, "group"), full), str(o, "sockets"), str(o, "node")});
  std::string out = table({"Namespace", "Kind", "Id", "Group", "Sockets", "Node"}, rows);
  if (objects.value("truncated", false)) out += "(only the first " + std::to_string(rows.size()) + ": use --limit for more)\n";
  return out;
}

std::string where_text(const nlohmann::json& where) {
  std::string out;
  if (where.contains("name")) out += "name:   " + str(where, "namespace") + " " + str(where, "name") + "\n";
  out += "id:     " + str(where, "id") + "\n";
  out += "owner:  " + str(where, "owner") + "\n";
  const std::string host = str(where, "host");
  out += "host:   " + (host.empty() ? std::string("(not live)") : host) + "\n";
  return out;
}

}  // namespace dog::admin
