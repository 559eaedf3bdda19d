#include "spec/yaml_tree.hpp"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace rguard {

const char* to_string(YamlNode::Kind kind) {
  switch (kind) {
    case YamlNode::Kind::Null: return "null";
    case YamlNode::Kind::Scalar: return "a scalar";
    case YamlNode::Kind::Sequence: return "a list";
    case YamlNode::Kind::Map: return "a mapping";
  }
  return "?";
}

YamlNodePtr YamlNode::find(const std::string& key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return v;
  return nullptr;
}

YamlNodePtr YamlNode::clone() const {
  auto copy = std::make_shared<YamlNode>(*this);
  for (auto& item : copy->items) item = item->clone();
  for (auto& entry : copy->entries) entry.second = entry.second->clone();
  return copy;
}

namespace {

class TreeBuilder : public YAML::EventHandler {
 public:
  explicit TreeBuilder(std::string source) : source_(std::move(source)) {}
  YamlNodePtr root() const { return root_; }
  const SourceLocation& start() const { return start_; }  // where the document began ('---', if written)

  void OnDocumentStart(const YAML::Mark& mark) override { start_ = location(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    add(make(YamlNode::Kind::Null, mark), anchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) throw Error(fmt::format("{}: unknown alias", where(mark)));
    auto node = it->second->clone();
    node->location = location(mark);
    add(node, 0);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    auto node = make(YamlNode::Kind::Scalar, mark);
    node->value = value;
    node->quoted = tag == "!";  // yaml-cpp tags plain scalars "?" and quoted ones "!"
    add(node, anchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(make(YamlNode::Kind::Sequence, mark), anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(make(YamlNode::Kind::Map, mark), anchor);
  }
  void OnMapEnd() override {
    if (stack_.back().pending_key) throw Error(fmt::format("{}: mapping key without value", source_));
    close();
  }

 private:
  struct Open {
    YamlNodePtr node;
    YAML::anchor_t anchor;
    bool pending_key = false;  // Map: a key was read, its value comes next
    std::string key;
    SourceLocation key_location;
  };

  SourceLocation location(const YAML::Mark& mark) const {
    return {source_, mark.line + 1, mark.column + 1};
  }
  std::string where(const YAML::Mark& mark) const { return location(mark).str(); }
  YamlNodePtr make(YamlNode::Kind kind, const YAML::Mark& mark) const {
    auto node = std::make_shared<YamlNode>();
    node->kind = kind;
    node->location = location(mark);
    return node;
  }

  void open(YamlNodePtr node, YAML::anchor_t anchor) {
    if (stack_.size() >= kMaxDepth)
      throw Error(fmt::format("{}: lists and mappings nested more than {} deep; a pipeline needs a handful of levels",
                              node->location.str(), kMaxDepth));
    stack_.push_back({std::move(node), anchor, false, {}, {}});
  }
  void close() {
    Open top = std::move(stack_.back());
    stack_.pop_back();
    add(top.node, top.anchor);
  }

  void add(const YamlNodePtr& node, YAML::anchor_t anchor) {
    // Aliases copy their anchor's tree: bound the total, or nested aliases could expand
    // exponentially ("billion laughs").
    nodes_ += count_nodes(*node);
    if (nodes_ > kMaxNodes)
      throw Error(fmt::format("{}: more than {} YAML nodes (nested aliases?); a pipeline is much smaller",
                              node->location.str(), kMaxNodes));
    if (anchor != 0) anchors_[anchor] = node;
    if (stack_.empty()) {
      root_ = node;
      return;
    }
    Open& parent = stack_.back();
    if (parent.node->kind == YamlNode::Kind::Sequence) {
      parent.node->items.push_back(node);
      return;
    }
    if (!parent.pending_key) {  // this node is a key
      if (node->kind != YamlNode::Kind::Scalar)
        throw Error(fmt::format("{}: mapping keys must be plain words, got {}", node->location.str(),
                                to_string(node->kind)));
      if (node->value == "<<" && !node->quoted)
        throw Error(fmt::format("{}: YAML merge keys ('<<') are not supported; write the keys out",
                                node->location.str()));
      for (std::size_t i = 0; i < parent.node->entries.size(); ++i)
        if (parent.node->entries[i].first == node->value)
          throw Error(fmt::format("{}: duplicate key '{}' (first given at {}); remove one of them",
                                  node->location.str(), node->value,
                                  parent.node->key_locations[i].str()));
      parent.pending_key = true;
      parent.key = node->value;
      parent.key_location = node->location;
      return;
    }
    parent.node->entries.emplace_back(parent.key, node);
    parent.node->key_locations.push_back(parent.key_location);
    parent.pending_key = false;
  }

  static constexpr std::size_t kMaxNodes = 100000;
  static constexpr std::size_t kMaxDepth = 64;
  static std::size_t count_nodes(const YamlNode& node) {
    std::size_t n = 1;
    for (const auto& item : node.items) n += count_nodes(*item);
    for (const auto& entry : node.entries) n += count_nodes(*entry.second);
    return n;
  }

  std::size_t nodes_ = 0;
  std::string source_;
  SourceLocation start_;
  YamlNodePtr root_;
  std::vector<Open> stack_;
  std::map<YAML::anchor_t, YamlNodePtr> anchors_;
};

// YAML forbids tabs in indentation, and yaml-cpp then reports what it made of the line
// ("illegal map value"), not the tab: when a parse fails, the nearest line at or before the
// failure whose indentation holds a tab is named instead. Only failures are explained this
// way, as a tab is legal elsewhere (after '-', inside flow collections and block scalars).
std::string tab_before(const std::string& text, int error_line) {
  std::vector<std::pair<int, int>> tabs;  // (line, column) of a tab in a line's indentation
  int line = 1;
  for (std::size_t start = 0; start <= text.size() && line <= error_line; ++line) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::size_t i = start;
    while (i < end && (text[i] == ' ' || text[i] == '\t')) ++i;
    const auto indent_end = text.begin() + static_cast<std::ptrdiff_t>(i);
    const auto tab = std::find(text.begin() + static_cast<std::ptrdiff_t>(start), indent_end, '\t');
    if (i < end && text[i] != '#' && tab != indent_end)
      tabs.emplace_back(line, static_cast<int>(tab - text.begin() - static_cast<std::ptrdiff_t>(start)) + 1);
    start = end + 1;
  }
  if (tabs.empty()) return "";
  return fmt::format("{}:{}", tabs.back().first, tabs.back().second);
}

}  // namespace

YamlNodePtr parse_yaml(const std::string& text, const std::string& source_name) {
  std::istringstream in(text);
  TreeBuilder builder(source_name);
  try {
    YAML::Parser parser(in);
    parser.HandleNextDocument(builder);
    // A second document would be ignored silently: a pipeline is one document.
    TreeBuilder next(source_name);
    if (parser.HandleNextDocument(next) && next.root() && next.root()->kind != YamlNode::Kind::Null)
      throw Error(fmt::format("{}: a second YAML document begins here ('---'); a spec file holds one pipeline: remove "
                              "the '---' line to merge its sections into the first, or put the second pipeline in its "
                              "own file",
                              next.start().str()));
  } catch (const YAML::Exception& e) {
    if (const std::string tab = tab_before(text, e.mark.line + 1); !tab.empty())
      throw Error(fmt::format("{}:{}: a tab character in the indentation; YAML indents with spaces only: replace the tab "
                              "by spaces (the parser stopped at {}:{}: {})",
                              source_name, tab, e.mark.line + 1, e.mark.column + 1, e.msg));
    throw Error(fmt::format("{}:{}:{}: invalid YAML: {}", source_name, e.mark.line + 1,
                            e.mark.column + 1, e.msg));
  }
  auto root = builder.root();
  if (!root) {
    root = std::make_shared<YamlNode>();
    root->location = {source_name, 1, 1};
  }
  return root;
}

YamlNodePtr parse_yaml_file(const std::string& path) {
  // Only a regular file of bounded size is read: a FIFO or a device (/dev/zero) would block
  // or never end, and a folder has no text.
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw Error(fmt::format("{}: cannot open the file (does it exist? check the path)", path));
  if (fs::is_directory(status))
    throw Error(fmt::format("{}: is a folder; give the pipeline's YAML file (e.g. {}/quickstart.yaml)", path, path));
  if (!fs::is_regular_file(status))
    throw Error(fmt::format("{}: not a regular file (a FIFO, socket or device); save the pipeline to a file and give "
                            "its path",
                            path));
  constexpr std::uintmax_t kMaxBytes = 1 << 20;
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec || size > kMaxBytes)
    throw Error(fmt::format("{}: {} bytes, more than the {} a pipeline spec may have; is this the right file?", path,
                            ec ? std::string("unknown size") : std::to_string(size), kMaxBytes));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open the file (is it readable?)", path));
  std::string text(static_cast<std::size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return parse_yaml(text, path);
}

}  // namespace rguard
