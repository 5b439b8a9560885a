// train.h declares the training engine of train.cpp: a forward and
// backward pass over the model with either only a LoRA adapter's A and B
// matrices trainable (the base frozen) or every weight trainable, gradient accumulation, and AdamW steps, all computed by
// ggml on the model's own backends. Every function reports failures through
// its return value and err buffer; none lets a C++ exception reach Go.
#ifndef CODEPLAN_TRAIN_H
#define CODEPLAN_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include "llama.h"
#include "graphinfo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp_trainer cp_trainer;

// cp_train_config sizes the trainer.
typedef struct cp_train_config {
    int32_t n_threads;  // CPU threads for the CPU backend
    int32_t max_tokens; // most tokens one cp_train_batch call may pass
    // graph_only builds graphs without allocating training state or F32
    // copies (sizes are still counted): for checking and sizing the graphs of
    // models loaded with no_alloc. Such a trainer refuses to train.
    bool    graph_only;
    // as_gpu builds the graphs a GPU backend would be given (no CPU-only
    // rewrites; base weights the GPU's OUT_PROD refuses are copied to F32),
    // so the CPU can check them against the GPU kernels' rules.
    bool    as_gpu;
    // raw_backward leaves the backward graph as ggml builds it, without the
    // rewrites that make it legal for CUDA (contiguous_acc_sources): only for
    // tests that show those rewrites are needed.
    bool    raw_backward;
} cp_train_config;

// cp_train_result is what one cp_train_batch call measured.
typedef struct cp_train_result {
    double  loss_sum;  // sum of the cross-entropy over the scored tokens (nats)
    int32_t n_scored;  // tokens whose next token was scored
    int32_t n_correct; // scored tokens whose arg-max prediction was right
} cp_train_result;

// cp_adamw holds the parameters of one optimizer step.
typedef struct cp_adamw {
    float   lr;
    float   beta1;
    float   beta2;
    float   eps;
    float   wd;         // decoupled weight decay
    float   grad_scale; // multiplies the accumulated gradient first (clipping)
    int64_t t;          // 1-based step number, for Adam's bias correction
} cp_adamw;

// Kinds of per-tensor data for cp_train_tensor_get / _set.
enum cp_train_kind {
    CP_TRAIN_VALUE = 0, // the adapter tensor itself
    CP_TRAIN_M     = 1, // AdamW first moment
    CP_TRAIN_V     = 2, // AdamW second moment
    CP_TRAIN_GRAD  = 3, // accumulated gradient
};

cp_trainer *cp_train_new(struct llama_model *model, struct llama_adapter_lora *adapter, cp_train_config cfg, char *err, size_t err_len);
// cp_train_new_full trains every weight of the model itself (full
// fine-tuning, or training from scratch): the weights must be F32 and loaded
// without mmap, and the optimizer updates them in place. Weight decay
// applies to matrices only.
cp_trainer *cp_train_new_full(struct llama_model *model, cp_train_config cfg, char *err, size_t err_len);
void cp_train_free(cp_trainer *t);

int32_t     cp_train_n_tensors(const cp_trainer *t);
const char *cp_train_tensor_name(const cp_trainer *t, int32_t i);
int64_t     cp_train_tensor_ne(const cp_trainer *t, int32_t i, int32_t dim);
// the name of the first GPU backend the trainer computes on ("" = CPU only)
const char *cp_train_gpu(const cp_trainer *t);
// bytes of F32 copies made of base weights whose type the backward pass
// cannot use directly
int64_t     cp_train_upcast_bytes(const cp_trainer *t);
// bytes of the gradient and AdamW state buffers
int64_t     cp_train_state_bytes(const cp_trainer *t);
// bytes of the largest compute buffers (activations and their gradients)
// a batch has needed so far
int64_t     cp_train_compute_bytes(const cp_trainer *t);

int32_t cp_train_tensor_get(cp_trainer *t, int32_t i, int32_t kind, float *dst, int64_t n, char *err, size_t err_len);
int32_t cp_train_tensor_set(cp_trainer *t, int32_t i, int32_t kind, const float *src, int64_t n, char *err, size_t err_len);

// cp_train_batch runs the model over n tokens (several sequences may share
// the call: seq gives each token's sequence, pos its position in it).
// labels[i] is the token that should follow token i, or -1 when token i is
// not scored. With backward set, weight * (sum of the scored cross-entropies)
// is differentiated and its gradient added to the accumulators.
int32_t cp_train_batch(cp_trainer *t, const llama_token *tokens, const llama_pos *pos, const llama_seq_id *seq,
                       const llama_token *labels, int32_t n, bool backward, float weight,
                       cp_train_result *res, char *err, size_t err_len);
// Graphs cp_train_graph can describe.
enum cp_train_graph_kind {
    CP_GRAPH_STEP      = 0, // forward, loss and backward pass of one batch
    CP_GRAPH_ADAMW     = 1, // the optimizer step
    CP_GRAPH_GRAD_NORM = 2, // the gradient norm (clipping)
};

// cp_train_graph builds (without computing) the graph of the given kind for
// a batch of n_seqs sequences of n_tokens tokens in total and describes it;
// *n_out is the number of tensors, which cp_train_graph_rows copies out.
int32_t cp_train_graph(cp_trainer *t, int32_t kind, int32_t n_tokens, int32_t n_seqs, int32_t *n_out, char *err, size_t err_len);
// cp_train_graph_rows copies up to cap tensors of the last described graph
// to out and returns how many.
int32_t cp_train_graph_rows(const cp_trainer *t, struct cp_graph_tensor *out, int32_t cap);

// cp_train_plan_compute sets *bytes to the compute buffers (activations,
// their gradients, in-graph F32 copies) one step of n_seqs sequences and
// n_tokens tokens needs, on all backends together, without allocating them.
int32_t cp_train_plan_compute(cp_trainer *t, int32_t n_tokens, int32_t n_seqs, int64_t *bytes, char *err, size_t err_len);

int32_t cp_train_zero_grad(cp_trainer *t, char *err, size_t err_len);
int32_t cp_train_grad_norm(cp_trainer *t, double *norm, char *err, size_t err_len);
int32_t cp_train_adamw(cp_trainer *t, cp_adamw p, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
