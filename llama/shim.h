// shim.h declares the small C/C++ helpers that sit between Go and llama.cpp.
// They exist for two reasons: C++ exceptions must never cross into Go (they
// would abort the process), and C callbacks must be trampolined through
// exported Go functions.
#ifndef CODEPLAN_SHIM_H
#define CODEPLAN_SHIM_H

#include <stdbool.h>
#include <stdint.h>
#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

void cp_install_log(void);
void cp_forget_graph(struct llama_context *ctx);
void cp_head_dims(const struct llama_model *model, uint32_t *k, uint32_t *v);
// cp_kv_cells reports the KV cells of one stream: cells in use, one past the
// highest used cell, the stream's size, and the cells attention spans
// (llama.cpp's get_n_kv). False when the memory is not a KV cache.
bool cp_kv_cells(struct llama_context *ctx, int32_t stream, uint32_t *used, uint32_t *max_p1, uint32_t *size, uint32_t *n_kv);
struct llama_model *cp_load_model(const char *path, struct llama_model_params params, uintptr_t progress_handle, char *err, size_t err_len);
struct llama_context *cp_new_context(struct llama_model *model, struct llama_context_params params, char *err, size_t err_len);
int32_t cp_decode(struct llama_context *ctx, struct llama_batch batch, char *err, size_t err_len);
int32_t cp_sample(struct llama_sampler *smpl, struct llama_context *ctx, int32_t idx, llama_token *out, char *err, size_t err_len);
int32_t cp_accept(struct llama_sampler *smpl, llama_token tok, char *err, size_t err_len);
struct llama_sampler *cp_grammar(const struct llama_vocab *vocab, const char *grammar, const char *root, char *err, size_t err_len);
struct llama_adapter_lora *cp_load_adapter(struct llama_model *model, const char *path, char *err, size_t err_len);
int32_t cp_tokenize(const struct llama_vocab *vocab, const char *text, int32_t len, llama_token *out, int32_t cap, bool add_special, bool parse_special, size_t stack_bytes, int32_t *n_out, char *err, size_t err_len);
int32_t cp_chat_template(const char *tmpl, const struct llama_chat_message *msgs, size_t n, bool add_ass, char *buf, int32_t len);

#ifdef __cplusplus
}
#endif

#endif
