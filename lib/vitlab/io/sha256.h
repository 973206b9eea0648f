#pragma once
// SHA-256 (FIPS 180-4) of a file, as lowercase hex: what a result records of each plugin it ran
// with, comparable with `sha256sum`.
#include <string>

namespace vitlab {

std::string sha256_file(const std::string& path);  // fails naming the file when it cannot be read
std::string sha256_hex(const std::string& bytes);

}  // namespace vitlab
