// A C stdio file closed when it goes out of scope.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

namespace npcvoice {

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

inline File open_file(const std::string& path, const char* mode) {
  return File(std::fopen(path.c_str(), mode));
}

// Whether everything written reached the file (a full disk shows up here, not at each write).
inline bool finished(const File& file) {
  return std::fflush(file.get()) == 0 && std::ferror(file.get()) == 0;
}

}  // namespace npcvoice
