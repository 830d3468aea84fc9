# Sourced by the scripts that build a ggml server from source
# (build-llama-server.sh, build-whisper-server.sh). Not run.
#
# ggml_arch NAME VERSION: from HEARTH_ARCH (amd64, the default, or arm64)
# sets `dest` (the cache folder of NAME-VERSION, `-arm64` for arm64),
# `compilers` (the C and C++ compilers the build needs) and `cross` (CMake's
# cross-compiling flags; none for amd64).
#
# arm64 is cross-compiled with Debian's g++-aarch64-linux-gnu against its
# arm64 glibc. No -mcpu=native (GGML_NATIVE is off): armv8.2-a with dot
# products and half floats, what a Raspberry Pi 5 (Cortex-A76) and every
# recent ARM board run; ggml picks the rest at run time.
ggml_arch() {
    local name="$1" version="$2" cache_root
    cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
    case "${HEARTH_ARCH:-amd64}" in
        amd64) dest="$cache_root/$name-$version"; compilers=(cc c++); cross=() ;;
        arm64)
            dest="$cache_root/$name-$version-arm64"
            compilers=(aarch64-linux-gnu-gcc aarch64-linux-gnu-g++)
            cross=(-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64
                -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++
                -DCMAKE_FIND_ROOT_PATH=/usr/aarch64-linux-gnu
                -DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER -DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY
                -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16)
            ;;
        *) echo "$name: HEARTH_ARCH is amd64 or arm64, not $HEARTH_ARCH" >&2; exit 2 ;;
    esac
}
