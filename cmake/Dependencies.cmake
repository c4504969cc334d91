# Third-party dependencies, all from Debian 12 packages (scripts/setup.sh installs them).
find_package(Threads REQUIRED)
find_package(CapnProto 0.9 REQUIRED)
find_package(Catch2 2 REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(toml11 3 REQUIRED)                      # --config files (node/ops/)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)   # SHA-1 for the WebSocket handshake only
find_package(PkgConfig REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)

# Standalone Asio is header-only and ships no CMake config.
find_path(ASIO_INCLUDE_DIR asio.hpp REQUIRED)
add_library(dog_asio INTERFACE)
target_include_directories(dog_asio SYSTEM INTERFACE ${ASIO_INCLUDE_DIR})
target_compile_definitions(dog_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
target_link_libraries(dog_asio INTERFACE Threads::Threads)

# llhttp (Node's HTTP parser): Debian ships its generated C sources in node-llhttp.
find_path(LLHTTP_INCLUDE_DIR llhttp.h PATHS /usr/share/include/llhttp REQUIRED)
find_path(LLHTTP_SOURCE_DIR llhttp.c PATHS /usr/share/llhttp REQUIRED)
add_library(dog_llhttp STATIC
  ${LLHTTP_SOURCE_DIR}/llhttp.c ${LLHTTP_SOURCE_DIR}/api.c ${LLHTTP_SOURCE_DIR}/http.c)
target_include_directories(dog_llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
set_target_properties(dog_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON C_STANDARD 11)
target_compile_options(dog_llhttp PRIVATE -w -O2)
# The strict build: RFC 9112 rejects, among others, whitespace between a field name and its colon.
target_compile_definitions(dog_llhttp PUBLIC LLHTTP_STRICT_MODE=1)
