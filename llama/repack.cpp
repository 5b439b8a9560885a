// Weight repacking on the CPU (see cp_enable_cpu_repack in repack.h).
//
// llama.cpp's CMake build defines GGML_USE_CPU_REPACK (ggml's GGML_CPU_REPACK
// option, on by default), which adds the CPU_REPACK buffer type to the CPU
// backend's "extra" buffer types: Q4_0, Q4_K and IQ4_NL matrices are then
// stored interleaved (8 rows × 8 bytes on AVX2) and multiplied by GEMM kernels
// that process several rows per pass. The Go module's cgo build of ggml-cpu
// compiles repack.cpp but does not set that define, so the buffer type is
// never registered and such models run on the slower row-by-row kernels.
// Registering it here, in the same list the define would fill, restores the
// upstream behaviour: the model loader, the scheduler's supports_op and the
// compute path all read that one list.

#include <vector>

#include "ggml-backend.h"
#include "repack.h"

// Both are defined in ggml-cpu (ggml-cpu.cpp and repack.cpp) with C++ linkage;
// their headers are internal to ggml-cpu, so they are declared here.
std::vector<ggml_backend_buffer_type_t> & ggml_backend_cpu_get_extra_buffer_types();
ggml_backend_buffer_type_t ggml_backend_cpu_repack_buffer_type(void);

extern "C" bool cp_enable_cpu_repack(void) {
    ggml_backend_buffer_type_t repack = ggml_backend_cpu_repack_buffer_type();
    if (repack == nullptr) {
        return false;
    }
    auto & bufts = ggml_backend_cpu_get_extra_buffer_types();
    for (auto * b : bufts) {
        if (b == repack) {
            return true;
        }
    }
    bufts.push_back(repack);
    return true;
}
