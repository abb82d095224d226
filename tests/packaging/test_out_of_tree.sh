#!/usr/bin/env bash
# Installs the built tree into a temporary prefix, then configures and
# builds examples/out_of_tree against it (find_package(Kamaelia), same
# compiler and flags as this build) and runs its self-test.
# Environment (set by tests/packaging/CMakeLists.txt): KAMAELIA_BINARY_DIR,
# KAMAELIA_SOURCE_DIR, PKG_WORK_DIR, PKG_GENERATOR, PKG_CXX_COMPILER,
# PKG_CXX_LAUNCHER, PKG_BUILD_TYPE, PKG_CXX_FLAGS, PKG_LINK_FLAGS.
set -euo pipefail

: "${KAMAELIA_BINARY_DIR:?}" "${KAMAELIA_SOURCE_DIR:?}" "${PKG_WORK_DIR:?}"
prefix=$PKG_WORK_DIR/prefix
build=$PKG_WORK_DIR/build
rm -rf "$prefix"
mkdir -p "$PKG_WORK_DIR"
# The example's build tree is kept between runs (incremental), but not its cache:
# the prefix is new every time.
rm -f "$build/CMakeCache.txt"

echo "== cmake --install $KAMAELIA_BINARY_DIR --prefix $prefix"
cmake --install "$KAMAELIA_BINARY_DIR" --prefix "$prefix" > "$PKG_WORK_DIR/install.log"
tail -n 3 "$PKG_WORK_DIR/install.log"

fail() { echo "FAIL: $*" >&2; exit 1; }
# What the package must hold.
for f in bin/kamaelia include/kamaelia/net/server_core.hpp include/kamaelia/protocols/greeter.hpp \
         include/kamaelia/chassis/pipeline.hpp; do
  [ -e "$prefix/$f" ] || fail "$f is not installed"
done
cmakedir=$(dirname "$(find "$prefix" -name KamaeliaConfig.cmake -print -quit)")
if [ -z "$cmakedir" ] || [ "$cmakedir" = . ]; then fail "KamaeliaConfig.cmake is not installed"; fi
for f in KamaeliaConfig.cmake KamaeliaConfigVersion.cmake KamaeliaTargets.cmake; do
  [ -f "$cmakedir/$f" ] || fail "$f is not installed"
done
for lib in libkamaelia_core.a libkamaelia_asio.a libkamaelia_protocols.a; do
  [ -n "$(find "$prefix" -name "$lib" -print -quit)" ] || fail "$lib is not installed"
done
# Private headers stay behind; the package names no path of this build or source tree.
[ -z "$(find "$prefix/include" -path '*/src/*' -print -quit)" ] || fail "private headers were installed"
if grep -rn -e "$KAMAELIA_BINARY_DIR" -e "$KAMAELIA_SOURCE_DIR/" "$cmakedir"; then
  fail "the installed package refers to the build or source tree"
fi
for def in ASIO_STANDALONE ASIO_SEPARATE_COMPILATION ASIO_NO_DEPRECATED ASIO_DISABLE_STD_ALIGNED_ALLOC; do
  grep -q "$def" "$cmakedir"/KamaeliaTargets.cmake || fail "kamaelia::asio does not carry $def"
done

echo "== configure examples/out_of_tree against $prefix"
args=(-S "$KAMAELIA_SOURCE_DIR/examples/out_of_tree" -B "$build"
      -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_PACKAGE_PREFER_CONFIG=ON
      -DCMAKE_BUILD_TYPE="${PKG_BUILD_TYPE:-RelWithDebInfo}")
[ -n "${PKG_GENERATOR:-}" ] && args+=(-G "$PKG_GENERATOR")
[ -n "${PKG_CXX_COMPILER:-}" ] && args+=(-DCMAKE_CXX_COMPILER="$PKG_CXX_COMPILER")
[ -n "${PKG_CXX_LAUNCHER:-}" ] && args+=(-DCMAKE_CXX_COMPILER_LAUNCHER="$PKG_CXX_LAUNCHER")
args+=(-DCMAKE_CXX_FLAGS="${PKG_CXX_FLAGS:-}" -DCMAKE_EXE_LINKER_FLAGS="${PKG_LINK_FLAGS:-}")
cmake "${args[@]}"

echo "== build"
cmake --build "$build" -j 2

echo "== run the self-test"
"$build/echo_upper" --self-test
