#pragma once
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

// cp_enable_cpu_repack registers ggml's CPU_REPACK buffer type as an extra
// CPU buffer type, which is what building ggml with GGML_USE_CPU_REPACK does.
// Call it once, before the first model is loaded. Returns false when the
// buffer type is missing.
bool cp_enable_cpu_repack(void);

#ifdef __cplusplus
}
#endif
