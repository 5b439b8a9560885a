// train.cpp: LoRA training, and full training of every weight, on top of
// llama.cpp's model and ggml's automatic differentiation (see train.h for
// the C interface). Full training (cp_train_new_full) makes the model's own
// F32 weights the parameters instead of an adapter's; everything below
// applies to both.
//
// Why not llama_opt_init/llama_opt_epoch: in this llama.cpp version their
// training graph is the inference graph, which writes K and V into the KV
// cache with ggml_set_rows (a view of the cache) and reads attention inputs
// back from the cache. As soon as any K or V depends on a trainable tensor,
// ggml_build_backward_expand hits its "inplace operations are not
// supported" assertion on that view and aborts the process (upstream
// llama.cpp later fixed training by building attention without the cache;
// this file does the same). opt_epoch also sets one-hot labels for every
// position (prompt tokens cannot be left out of the loss), and ggml_opt
// keeps the AdamW moments and its step counter private (no exact resume).
//
// So this file builds its own training graph for the llama family: the same
// layers as the inference graph (llama.cpp's own llm_graph_context helpers
// for embeddings, norms and the attention kernel), but with attention
// computed directly from this batch's K and V (llm_graph_input_attn_no_cache,
// which also masks other sequences, so several rows can share one batch) and
// every matrix product routed through mm(), which adds the adapter's
// B·A update exactly as llama.cpp's build_lora_mm does at inference. Only the
// adapter's tensors are marked as parameters; gradient accumulators and
// AdamW moments are tensors this file owns, allocated next to each
// parameter (same buffer type, so an in-place update never crosses
// backends), and readable for checkpoints.
//
// Everything here uses the public headers of llama.cpp's src/ directory
// (llama_model, llama_adapter_lora, llm_graph_context are plain structs);
// nothing private is reached.

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "train.h"

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama-adapter.h"
#include "llama-arch.h"
#include "llama-batch.h"
#include "llama-context.h"
#include "llama-graph.h"
#include "llama-model.h"
#include "guard.hpp"

namespace {

// trainable is one adapter tensor with its optimizer state.
struct trainable {
    std::string   name;
    ggml_tensor * value = nullptr; // the adapter's tensor (F32, in a backend buffer)
    ggml_tensor * grad  = nullptr; // gradient accumulator
    ggml_tensor * m     = nullptr; // AdamW first moment
    ggml_tensor * v     = nullptr; // AdamW second moment
};

// owned_buffer frees a ggml context and the backend buffer holding its tensors.
struct owned_buffer {
    ggml_context *        ctx = nullptr;
    ggml_backend_buffer_t buf = nullptr;
    owned_buffer() = default;
    owned_buffer(const owned_buffer &) = delete;
    owned_buffer & operator=(const owned_buffer &) = delete;
    ~owned_buffer() {
        if (buf) {
            ggml_backend_buffer_free(buf);
        }
        if (ctx) {
            ggml_free(ctx);
        }
    }
};

struct train_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string fmt(const char * f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char * f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof(buf), f, ap);
    va_end(ap);
    return buf;
}

void set_err(char * err, size_t len, const std::string & msg) {
    cp_set_err(err, len, msg.c_str());
}

// Architectures whose inference graph (src/models/<arch>.cpp) is the dense
// llama layout that train_graph below reproduces.
bool supported_arch(llm_arch arch) {
    return arch == LLM_ARCH_LLAMA || arch == LLM_ARCH_QWEN2 || arch == LLM_ARCH_QWEN3;
}

ggml_backend_dev_t tensor_device(const ggml_tensor * t) {
    if (t->buffer == nullptr) {
        return nullptr;
    }
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(ggml_backend_buffer_get_type(t->buffer));
    if (dev == nullptr) {
        // host buffers made from a pointer (mmapped weights) have no device
        dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    }
    return dev;
}

} // namespace

struct cp_trainer {
    const llama_model *  model   = nullptr;
    llama_adapter_lora * adapter = nullptr; // null when training the model's own weights
    // full: every weight of the model is a parameter (no adapter)
    bool full = false;
    // tied_output is model.output when it is llama.cpp's duplicate of
    // token_embd (no output.weight in the file): full training computes the
    // logits with token_embd itself, so both uses of the one matrix share a
    // gradient, and copies the updated values into the duplicate after
    // every optimizer step so that inference sees them
    ggml_tensor * tied_output = nullptr;
    // graph_only: graphs are built and sized but nothing is allocated (see
    // cp_train_config); as_gpu: graphs are built as for a GPU backend
    bool graph_only   = false;
    bool as_gpu       = false;
    bool raw_backward = false;
    llama_cparams        cparams{};
    int32_t              max_tokens = 0;
    int64_t              max_nodes  = 0;

    std::vector<ggml_backend_t>             backends; // GPUs first, CPU last (the scheduler's convention)
    std::vector<ggml_backend_buffer_type_t> bufts;
    ggml_backend_t                          backend_cpu = nullptr;
    ggml_backend_sched_t                    sched       = nullptr;

    std::vector<trainable> params;
    // gradients and moments live in separate buffers per buffer type, so
    // that zeroing the gradients is one buffer clear
    std::vector<std::unique_ptr<owned_buffer>> grad_bufs;
    std::vector<std::unique_ptr<owned_buffer>> moment_bufs;
    // F32 copies of base weights the backward pass cannot read in their own
    // type (see plan_upcasts)
    std::unordered_map<const ggml_tensor *, ggml_tensor *> upcast;
    // base weights the backward pass reads through a copy to F32 made
    // inside each step's graph (cast_out_prod_weights) instead of a
    // persistent copy: the copy lives in the compute buffer only while its
    // OUT_PROD runs
    std::unordered_map<const ggml_tensor *, bool> cast_in_graph;
    std::vector<std::unique_ptr<owned_buffer>>             upcast_bufs;
    int64_t                                                upcast_bytes = 0;
    int64_t                                                state_bytes  = 0;
    int64_t                                                compute_bytes = 0; // largest compute buffers so far
    // small host tensors: the loss gradient seed and the AdamW parameters
    owned_buffer  aux;
    ggml_tensor * seed         = nullptr;
    ggml_tensor * adamw_params = nullptr;
    // the same AdamW parameters with weight decay 0, for vectors (norm
    // weights, biases): decay is applied to matrices only
    ggml_tensor * adamw_params_nodecay = nullptr;

    // empty stand-ins for the context state a graph builder may consult
    llama_adapter_cvec  cvec;
    llama_adapter_loras no_loras;
    llama_cross         cross;

    // the last graph cp_train_graph described
    cp_graph_collector described;

    std::unique_ptr<llama_batch_allocr> balloc;
    std::unique_ptr<llm_graph_result>   res;
    std::vector<uint8_t>                meta; // metadata memory of the per-step context

    ~cp_trainer() {
        clear_param_flags();
        if (sched) {
            ggml_backend_sched_free(sched);
        }
        // buffers must go before the backends that own their devices
        grad_bufs.clear();
        moment_bufs.clear();
        upcast_bufs.clear();
        if (aux.buf) {
            ggml_backend_buffer_free(aux.buf);
            aux.buf = nullptr;
        }
        for (auto * b : backends) {
            ggml_backend_free(b);
        }
    }

    // The adapter's tensors carry GGML_TENSOR_FLAG_PARAM only while a
    // training graph is being built: an inference context that uses the
    // same adapter must see ordinary constant tensors.
    void set_param_flags() {
        for (auto & p : params) {
            p.value->flags |= GGML_TENSOR_FLAG_PARAM;
        }
    }
    void clear_param_flags() {
        for (auto & p : params) {
            p.value->flags &= ~GGML_TENSOR_FLAG_PARAM;
        }
    }

    // cpu_only: every computation runs on the CPU backend, which allows the
    // CPU-only rewrites of out_prods_as_mul_mats
    bool cpu_only() const { return !as_gpu && backends.size() == 1; }

    ggml_tensor * compute_weight(ggml_tensor * w) const {
        if (full && w == tied_output) {
            return model->tok_embd;
        }
        auto it = upcast.find(w);
        return it == upcast.end() ? w : it->second;
    }
};

namespace {

// train_graph is the training forward graph of the dense llama family. It
// follows llm_build_llama / llm_build_qwen2 / llm_build_qwen3 op for op,
// with two differences: attention reads K and V of this batch directly (no
// KV cache), and matrix products go through mm().
struct train_graph : public llm_graph_context {
    const cp_trainer & tr;
    ggml_tensor *      logits = nullptr;

    ggml_tensor * mm(ggml_tensor * w, ggml_tensor * x) const {
        ggml_tensor * y = ggml_mul_mat(ctx0, tr.compute_weight(w), x);
        llama_adapter_lora_weight * lw = tr.adapter ? tr.adapter->get_weight(w) : nullptr;
        if (lw != nullptr) {
            // the same update llama.cpp's build_lora_mm applies at inference
            const float   scale = lw->get_scale(tr.adapter->alpha, 1.0f);
            ggml_tensor * ab    = ggml_mul_mat(ctx0, lw->b, ggml_mul_mat(ctx0, lw->a, x));
            y = ggml_add(ctx0, y, ggml_scale(ctx0, ab, scale));
        }
        return y;
    }

    ggml_tensor * bias(ggml_tensor * x, ggml_tensor * b) const {
        return b ? ggml_add(ctx0, x, b) : x;
    }

    train_graph(const llama_model & model, const llm_graph_params & params, const cp_trainer & tr) :
        llm_graph_context(params), tr(tr) {
        const int64_t n_embd_head = hparams.n_embd_head_v;
        const float   kq_scale    = hparams.f_attention_scale == 0.0f ? 1.0f / sqrtf(float(n_embd_head)) : hparams.f_attention_scale;

        ggml_tensor * inpL        = build_inp_embd(model.tok_embd);
        ggml_tensor * inp_pos     = build_inp_pos();
        auto *        inp_attn    = build_attn_inp_no_cache();
        ggml_tensor * inp_out_ids = build_inp_out_ids();

        for (int il = 0; il < n_layer; ++il) {
            const llama_layer & layer = model.layers[il];
            ggml_tensor *       inpSA = inpL;

            ggml_tensor * cur = build_norm(inpL, layer.attn_norm, nullptr, LLM_NORM_RMS, il);
            cb(cur, "attn_norm", il);

            ggml_tensor * rope_factors = arch == LLM_ARCH_LLAMA ? model.get_rope_factors(cparams, il) : nullptr;

            ggml_tensor * Qcur = bias(mm(layer.wq, cur), layer.bq);
            ggml_tensor * Kcur = bias(mm(layer.wk, cur), layer.bk);
            ggml_tensor * Vcur = bias(mm(layer.wv, cur), layer.bv);
            cb(Qcur, "Qcur", il);
            cb(Kcur, "Kcur", il);
            cb(Vcur, "Vcur", il);

            Qcur = ggml_reshape_3d(ctx0, Qcur, n_embd_head, n_head, n_tokens);
            Kcur = ggml_reshape_3d(ctx0, Kcur, n_embd_head, n_head_kv, n_tokens);
            Vcur = ggml_reshape_3d(ctx0, Vcur, n_embd_head, n_head_kv, n_tokens);

            if (layer.attn_q_norm) { // qwen3: per-head RMS norm before RoPE
                Qcur = build_norm(Qcur, layer.attn_q_norm, nullptr, LLM_NORM_RMS, il);
                cb(Qcur, "Qcur_normed", il);
            }
            if (layer.attn_k_norm) {
                Kcur = build_norm(Kcur, layer.attn_k_norm, nullptr, LLM_NORM_RMS, il);
                cb(Kcur, "Kcur_normed", il);
            }

            Qcur = ggml_rope_ext(ctx0, Qcur, inp_pos, rope_factors, n_rot, rope_type, n_ctx_orig, freq_base, freq_scale,
                                 ext_factor, attn_factor, beta_fast, beta_slow);
            Kcur = ggml_rope_ext(ctx0, Kcur, inp_pos, rope_factors, n_rot, rope_type, n_ctx_orig, freq_base, freq_scale,
                                 ext_factor, attn_factor, beta_fast, beta_slow);
            cb(Qcur, "Qcur", il);
            cb(Kcur, "Kcur", il);

            if (arch == LLM_ARCH_LLAMA && hparams.use_kq_norm) { // Llama4TextL2Norm
                Qcur = ggml_rms_norm(ctx0, Qcur, hparams.f_norm_rms_eps);
                Kcur = ggml_rms_norm(ctx0, Kcur, hparams.f_norm_rms_eps);
                cb(Qcur, "Qcur_normed", il);
                cb(Kcur, "Kcur_normed", il);
            }

            cur = build_attn_mha(Qcur, Kcur, Vcur, nullptr, inp_attn->get_kq_mask(), nullptr, nullptr, kq_scale, il);
            cb(cur, "kqv_out", il);
            cur = bias(mm(layer.wo, cur), layer.bo);
            cb(cur, "attn_out", il);

            if (il == n_layer - 1) {
                // only the scored positions go through the last FFN and the
                // output matrix, as at inference only outputs do
                cur   = ggml_get_rows(ctx0, cur, inp_out_ids);
                inpSA = ggml_get_rows(ctx0, inpSA, inp_out_ids);
            }
            ggml_tensor * ffn_inp = ggml_add(ctx0, cur, inpSA);
            cb(ffn_inp, "ffn_inp", il);

            cur = build_norm(ffn_inp, layer.ffn_norm, nullptr, LLM_NORM_RMS, il);
            cb(cur, "ffn_norm", il);
            ggml_tensor * up   = bias(mm(layer.ffn_up, cur), layer.ffn_up_b);
            ggml_tensor * gate = bias(mm(layer.ffn_gate, cur), layer.ffn_gate_b);
            cur = ggml_swiglu_split(ctx0, gate, up);
            cb(cur, "ffn_swiglu", il);
            cur = bias(mm(layer.ffn_down, cur), layer.ffn_down_b);
            cb(cur, "ffn_out", il);

            cur = ggml_add(ctx0, cur, ffn_inp);
            cb(cur, "l_out", il);
            inpL = cur;
        }

        ggml_tensor * cur = build_norm(inpL, model.output_norm, nullptr, LLM_NORM_RMS, -1);
        cb(cur, "result_norm", -1);
        cur = bias(mm(model.output, cur), model.output_b); // qwen2 may have an output bias
        cb(cur, "result_output", -1);
        res->t_logits = cur;
        logits        = cur;
        ggml_build_forward_expand(gf, cur);
    }
};

// check_model refuses, before any work, models the graph above does not
// reproduce exactly.
void check_model(const llama_model & model) {
    if (!supported_arch(model.arch)) {
        throw train_error(fmt("LoRA training supports the llama, qwen2 and qwen3 architectures; this model is %s",
                              llm_arch_name(model.arch)));
    }
    const auto & hp = model.hparams;
    if (hp.n_embd_head_k != hp.n_embd_head_v || hp.n_rot != hp.n_embd_head_k) {
        throw train_error("unsupported attention layout (head sizes differ or partial RoPE)");
    }
    if (hp.swa_type != LLAMA_SWA_TYPE_NONE) {
        throw train_error("sliding-window attention models are not supported for training");
    }
    if (hp.f_embedding_scale != 0.0f || hp.f_residual_scale != 0.0f || hp.f_logit_scale != 0.0f) {
        throw train_error("models with embedding, residual or logit scales (granite-like) are not supported for training");
    }
    if (model.output == nullptr || model.output_norm == nullptr || model.tok_embd == nullptr) {
        throw train_error("model has no output, output_norm or token_embd tensor");
    }
    for (size_t il = 0; il < model.layers.size(); ++il) {
        const llama_layer & l = model.layers[il];
        if (l.ffn_gate_inp != nullptr) {
            throw train_error(fmt("layer %zu is a mixture-of-experts layer; only dense models are supported for training", il));
        }
        if (l.wqkv != nullptr || l.wq == nullptr || l.wk == nullptr || l.wv == nullptr || l.wo == nullptr ||
            l.ffn_gate == nullptr || l.ffn_up == nullptr || l.ffn_down == nullptr || l.attn_norm == nullptr ||
            l.ffn_norm == nullptr) {
            throw train_error(fmt("layer %zu does not have the separate q/k/v/o and gate/up/down matrices training needs", il));
        }
    }
}

// derive_cparams gets the context parameters inference would use (RoPE and
// YaRN values derived from the model's metadata) from a throwaway context of
// minimal size, then adapts them for training: causal attention without
// flash attention (ggml has no backward pass for it) and batches of up to
// max_tokens tokens.
llama_cparams derive_cparams(llama_model * model, int32_t n_threads, int32_t max_tokens) {
    llama_context_params p = llama_context_default_params();
    p.n_ctx           = 256;
    p.n_batch         = 1;
    p.n_ubatch        = 1;
    p.n_seq_max       = 1;
    p.n_threads       = n_threads;
    p.n_threads_batch = n_threads;
    p.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    p.no_perf         = true;
    llama_context * ctx = llama_init_from_model(model, p);
    if (ctx == nullptr) {
        throw train_error("could not create a llama.cpp context for the model");
    }
    llama_cparams c = ctx->get_cparams();
    llama_free(ctx);

    c.n_ctx       = GGML_PAD((uint32_t) max_tokens, 256);
    c.n_ctx_seq   = c.n_ctx;
    c.n_batch     = max_tokens;
    c.n_ubatch    = max_tokens;
    c.n_seq_max   = LLAMA_MAX_SEQ;
    c.kv_unified  = true;
    c.embeddings  = false;
    c.causal_attn = true;
    c.flash_attn  = false;
    c.offload_kqv = true;
    c.op_offload  = true;
    c.warmup      = false;
    c.no_perf     = true;
    c.cb_eval     = nullptr;
    c.cb_eval_user_data = nullptr;
    return c;
}

// init_backends mirrors llama_context: one backend per device the model
// uses, then the CPU backend last.
void init_backends(cp_trainer & t, int32_t n_threads) {
    for (auto * dev : t.model->devices) {
        ggml_backend_t b = ggml_backend_dev_init(dev, nullptr);
        if (b == nullptr) {
            throw train_error(fmt("failed to initialise the %s backend", ggml_backend_dev_name(dev)));
        }
        t.backends.push_back(b);
    }
    t.backend_cpu = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
    if (t.backend_cpu == nullptr) {
        throw train_error("failed to initialise the CPU backend");
    }
    t.backends.push_back(t.backend_cpu);
    ggml_backend_cpu_set_n_threads(t.backend_cpu, n_threads);
    for (auto * b : t.backends) {
        t.bufts.push_back(ggml_backend_get_default_buffer_type(b));
    }
}

// alloc_group allocates tensors made in ctx on buft, records the buffer and
// returns its size in bytes. With dry set nothing is allocated (the tensors
// stay without data) and the size is what the allocation would take.
int64_t alloc_group(std::vector<std::unique_ptr<owned_buffer>> & into, ggml_context * ctx,
                    ggml_backend_buffer_type_t buft, const char * what, bool dry) {
    auto ob = std::make_unique<owned_buffer>();
    ob->ctx = ctx;
    if (dry) {
        const size_t align = ggml_backend_buft_get_alignment(buft);
        int64_t      size  = 0;
        for (ggml_tensor * x = ggml_get_first_tensor(ctx); x != nullptr; x = ggml_get_next_tensor(ctx, x)) {
            size += GGML_PAD(ggml_backend_buft_get_alloc_size(buft, x), align);
        }
        into.push_back(std::move(ob));
        return size;
    }
    ob->buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, buft);
    if (ob->buf == nullptr) {
        into.push_back(std::move(ob));
        throw train_error(fmt("out of memory allocating %s on %s", what, ggml_backend_buft_name(buft)));
    }
    ggml_backend_buffer_clear(ob->buf, 0);
    const int64_t size = ggml_backend_buffer_get_size(ob->buf);
    into.push_back(std::move(ob));
    return size;
}

ggml_context * meta_ctx(size_t n_tensors) {
    ggml_init_params ip = {
        /*.mem_size   =*/ (n_tensors + 1) * ggml_tensor_overhead(),
        /*.mem_buffer =*/ nullptr,
        /*.no_alloc   =*/ true,
    };
    ggml_context * ctx = ggml_init(ip);
    if (ctx == nullptr) {
        throw train_error("out of memory (ggml context)");
    }
    return ctx;
}

// init_params collects the adapter's tensors.
void init_params(cp_trainer & t) {
    std::map<std::string, llama_adapter_lora_weight> sorted(t.adapter->ab_map.begin(), t.adapter->ab_map.end());
    for (auto & kv : sorted) {
        for (int ab = 0; ab < 2; ++ab) {
            ggml_tensor * v = ab == 0 ? kv.second.a : kv.second.b;
            if (v->type != GGML_TYPE_F32) {
                throw train_error(fmt("adapter tensor %s is %s; training needs F32 adapter tensors", v->name, ggml_type_name(v->type)));
            }
            if (v->buffer == nullptr) {
                throw train_error(fmt("adapter tensor %s has no data", v->name));
            }
            trainable p;
            p.name  = v->name;
            p.value = v;
            t.params.push_back(p);
        }
    }
    if (t.params.empty()) {
        throw train_error("the adapter has no tensors to train");
    }
}

// init_state allocates a gradient accumulator and two moments for every
// parameter, on the parameter's own buffer type, and the small host tensors.
void init_state(cp_trainer & t) {
    std::map<ggml_backend_buffer_type_t, std::vector<size_t>> by_buft;
    for (size_t i = 0; i < t.params.size(); ++i) {
        by_buft[ggml_backend_buffer_get_type(t.params[i].value->buffer)].push_back(i);
    }
    for (auto & kv : by_buft) {
        ggml_context * gctx = meta_ctx(kv.second.size());
        ggml_context * mctx = meta_ctx(2 * kv.second.size());
        for (size_t i : kv.second) {
            trainable & p = t.params[i];
            p.grad = ggml_dup_tensor(gctx, p.value);
            p.m    = ggml_dup_tensor(mctx, p.value);
            p.v    = ggml_dup_tensor(mctx, p.value);
            ggml_format_name(p.grad, "grad %s", p.name.c_str());
            ggml_format_name(p.m, "adamw m %s", p.name.c_str());
            ggml_format_name(p.v, "adamw v %s", p.name.c_str());
        }
        t.state_bytes += alloc_group(t.grad_bufs, gctx, kv.first, "gradients", t.graph_only);
        t.state_bytes += alloc_group(t.moment_bufs, mctx, kv.first, "AdamW moments", t.graph_only);
    }

    t.aux.ctx     = meta_ctx(3);
    t.seed        = ggml_new_tensor_1d(t.aux.ctx, GGML_TYPE_F32, 1);
    t.adamw_params = ggml_new_tensor_1d(t.aux.ctx, GGML_TYPE_F32, 7);
    t.adamw_params_nodecay = ggml_new_tensor_1d(t.aux.ctx, GGML_TYPE_F32, 7);
    ggml_set_name(t.seed, "loss gradient seed");
    ggml_set_name(t.adamw_params, "adamw params");
    ggml_set_name(t.adamw_params_nodecay, "adamw params (no decay)");
    t.aux.buf = ggml_backend_alloc_ctx_tensors_from_buft(t.aux.ctx, ggml_backend_cpu_buffer_type());
    if (t.aux.buf == nullptr) {
        throw train_error("out of memory (host buffer)");
    }
}

// init_params_full makes every weight of the model a parameter (sorted by
// name, like the adapter's). The weights must be F32 (the optimizer updates
// them in place, and F32 is their master copy) and in memory llama.cpp
// allocated: weights mapped from the file are read-only.
void init_params_full(cp_trainer & t) {
    std::map<std::string, ggml_tensor *> sorted;
    for (auto & nt : t.model->tensors_by_name) {
        // rope_freqs holds fixed RoPE frequency factors, not weights
        if (nt.first.rfind("rope_freqs", 0) == 0) {
            continue;
        }
        sorted[nt.first] = nt.second;
    }
    bool output_listed = false;
    for (auto & kv : sorted) {
        ggml_tensor * v = kv.second;
        output_listed = output_listed || v == t.model->output;
        if (v->type != GGML_TYPE_F32) {
            throw train_error(fmt("full training needs F32 weights, but %s is %s (codeplan model init writes F32 models)",
                                  kv.first.c_str(), ggml_type_name(v->type)));
        }
        if (v->buffer == nullptr) {
            throw train_error(fmt("model tensor %s has no data", kv.first.c_str()));
        }
        ggml_backend_buffer_type_t buft = ggml_backend_buffer_get_type(v->buffer);
        if (strcmp(ggml_backend_buft_name(buft), "CPU_Mapped") == 0) {
            throw train_error(fmt("model tensor %s is mapped read-only from the file; load the model without mmap for full training",
                                  kv.first.c_str()));
        }
        if (!ggml_backend_buft_is_host(buft) && ggml_backend_dev_type(tensor_device(v)) == GGML_BACKEND_DEVICE_TYPE_CPU) {
            throw train_error(fmt("model tensor %s is in the repacked %s buffer; load the model without weight repacking",
                                  kv.first.c_str(), ggml_backend_buft_name(buft)));
        }
        trainable p;
        p.name  = kv.first;
        p.value = v;
        t.params.push_back(p);
    }
    if (!output_listed && t.model->output != nullptr && t.model->output != t.model->tok_embd) {
        t.tied_output = t.model->output;
        if (t.tied_output->type != GGML_TYPE_F32 || !ggml_are_same_shape(t.tied_output, t.model->tok_embd)) {
            throw train_error("the tied output matrix is not an F32 copy of token_embd");
        }
    }
}

// step_ctx returns a fresh metadata-only context for the loss, backward
// and optimizer tensors of one step.
ggml_context * step_ctx(cp_trainer & t) {
    const size_t size = 4 * t.max_nodes * ggml_tensor_overhead() + 2 * ggml_graph_overhead_custom(t.max_nodes, true);
    if (t.meta.size() < size) {
        t.meta.resize(size);
    }
    ggml_init_params ip = {
        /*.mem_size   =*/ t.meta.size(),
        /*.mem_buffer =*/ t.meta.data(),
        /*.no_alloc   =*/ true,
    };
    ggml_context * ctx = ggml_init(ip);
    if (ctx == nullptr) {
        throw train_error("out of memory (ggml context)");
    }
    return ctx;
}

// built is one step's graph: forward (+ loss), optionally backward.
struct built {
    ggml_context * ctx    = nullptr; // loss and backward tensors
    ggml_cgraph *  graph  = nullptr; // what to compute
    ggml_tensor *  loss   = nullptr;
    ggml_tensor *  labels = nullptr;
    ggml_tensor *  pred   = nullptr;
    llama_ubatch   ubatch{};
    uint32_t       n_outputs = 0;
    ~built() {
        if (ctx) {
            ggml_free(ctx);
        }
    }
};

// protect_from_aliasing works around two CPU kernels of this ggml version
// that give wrong results when the graph allocator places their output over
// one of their inputs (both ops are on ggml-alloc's in-place list):
// rms_norm_back overwrites its incoming gradient (src0) before reading it,
// and soft_max_back overwrites the softmax output (src1) before reading it.
// The allocator reuses an input only if it is not a graph output, so those
// inputs are marked as outputs. For soft_max_back this is needed only when
// src0 cannot be reused (the allocator tries src0 first, which is safe).
// The cost is that these tensors stay allocated until the end of the step.
void protect_from_aliasing(ggml_cgraph * gb) {
    std::unordered_map<const ggml_tensor *, int> consumers;
    const int n = ggml_graph_n_nodes(gb);
    for (int i = 0; i < n; ++i) {
        ggml_tensor * node = ggml_graph_node(gb, i);
        for (int j = 0; j < GGML_MAX_SRC; ++j) {
            if (node->src[j]) {
                consumers[node->src[j]]++;
            }
        }
    }
    for (int i = 0; i < n; ++i) {
        ggml_tensor * node = ggml_graph_node(gb, i);
        if (node->op == GGML_OP_RMS_NORM_BACK) {
            ggml_set_output(node->src[0]);
        } else if (node->op == GGML_OP_SOFT_MAX_BACK) {
            ggml_tensor * dy = node->src[0];
            const bool dy_reusable = consumers[dy] == 1 && dy->view_src == nullptr && !(dy->flags & GGML_TENSOR_FLAG_OUTPUT) &&
                                     dy->type == node->type && ggml_are_same_shape(dy, node) && ggml_is_contiguous(dy);
            if (!dy_reusable) {
                ggml_set_output(node->src[1]);
            }
        }
    }
}

// transpose_f32 is a ggml custom op: dst = a, contiguous, where a is an F32
// view with arbitrary strides (a transposed matrix). ggml_cont does the same
// with one memcpy call per element for such views, which took 15% of a
// training step; this copies 32×32 tiles so that both the strided reads and
// the writes stay in cache.
void transpose_f32(ggml_tensor * dst, const ggml_tensor * a, int ith, int nth, void * /*userdata*/) {
    constexpr int64_t B = 32;
    const int64_t ne0 = dst->ne[0], ne1 = dst->ne[1], ne2 = dst->ne[2], ne3 = dst->ne[3];
    const int64_t blocks = (ne1 + B - 1) / B;
    const int64_t jobs   = blocks * ne2 * ne3;
    for (int64_t job = ith; job < jobs; job += nth) {
        const int64_t i1b = (job % blocks) * B;
        const int64_t i2  = (job / blocks) % ne2;
        const int64_t i3  = job / (blocks * ne2);
        const int64_t i1e = std::min(ne1, i1b + B);
        for (int64_t i0b = 0; i0b < ne0; i0b += B) {
            const int64_t i0e = std::min(ne0, i0b + B);
            for (int64_t i1 = i1b; i1 < i1e; ++i1) {
                float *      d = (float *) ((char *) dst->data + i1 * dst->nb[1] + i2 * dst->nb[2] + i3 * dst->nb[3]);
                const char * r = (const char *) a->data + i1 * a->nb[1] + i2 * a->nb[2] + i3 * a->nb[3];
                for (int64_t i0 = i0b; i0 < i0e; ++i0) {
                    d[i0] = *(const float *) (r + i0 * a->nb[0]);
                }
            }
        }
    }
}

// transposed is cont(transpose(x)) for an F32 x, computed by transpose_f32.
ggml_tensor * transposed(ggml_context * ctx, ggml_tensor * x) {
    return ggml_map_custom1(ctx, ggml_transpose(ctx, x), transpose_f32, GGML_N_TASKS_MAX, nullptr);
}

// out_prods_as_mul_mats returns the backward graph gb with every F32
// ggml_out_prod replaced by the same product computed by ggml_mul_mat, and
// with a contiguous copy of every non-contiguous F32 right operand of a
// mul_mat.
// ggml differentiates a matrix product y = W·x into two out_prods (the
// gradients of W and of x), and the CPU backend computes out_prod with a
// plain multiply-add loop that, measured on the training benchmark, took
// 45% of a step against 12% for the blocked (tinyBLAS) kernel behind
// mul_mat, which does half the work. With a [n,m] and b [p,m],
// out_prod(a, b)[i,j] = sum_k a[i,k]·b[j,k] =
// mul_mat(cont(transpose(a)), cont(transpose(b))); b is usually the
// transpose of a contiguous tensor already, which is then used directly. The
// transposed copy of a costs one pass over it, against the T-fold work of
// the product. (Broadcasting over dims 2 and 3, as grouped-query attention
// does, maps indices the same way in both ops.) Only for CPU-only trainers:
// GPU backends compute out_prod with their BLAS, and the copies would cost
// device memory.
ggml_cgraph * out_prods_as_mul_mats(cp_trainer & t, ggml_context * ctx, ggml_cgraph * gb) {
    std::unordered_map<const ggml_tensor *, ggml_tensor *> repl;
    ggml_cgraph * g = ggml_new_graph_custom(ctx, t.max_nodes, false);
    const int n = ggml_graph_n_nodes(gb);
    for (int i = 0; i < n; ++i) {
        ggml_tensor * node = ggml_graph_node(gb, i);
        for (int j = 0; j < GGML_MAX_SRC; ++j) {
            auto it = node->src[j] ? repl.find(node->src[j]) : repl.end();
            if (it != repl.end()) {
                node->src[j] = it->second;
            }
        }
        if (node->view_src != nullptr) {
            // a view of a replaced result: same shape, both contiguous
            auto it = repl.find(node->view_src);
            if (it != repl.end()) {
                node->view_src = it->second;
            }
        }
        ggml_tensor * a = node->src[0];
        ggml_tensor * b = node->src[1];
        if (node->op == GGML_OP_MUL_MAT && b->type == GGML_TYPE_F32 && !ggml_is_contiguous(b)) {
            // the CPU backend takes its blocked (tinyBLAS) path only for a
            // contiguous right operand, else one dot product per pair of
            // rows: attention's K·Q (Q permuted per head) spent 12% of a
            // step there. Its rows are contiguous, so the copy is cheap.
            node->src[1] = ggml_cont(ctx, b);
            ggml_build_forward_expand(g, node);
            continue;
        }
        if (node->op != GGML_OP_OUT_PROD || a->type != GGML_TYPE_F32 || b->type != GGML_TYPE_F32) {
            ggml_build_forward_expand(g, node);
            continue;
        }
        ggml_tensor * x = transposed(ctx, a);
        ggml_tensor * y = b->op == GGML_OP_TRANSPOSE && ggml_is_contiguous(b->src[0]) && b->src[0]->type == GGML_TYPE_F32
                              ? b->src[0]
                              : transposed(ctx, b);
        ggml_tensor * r = ggml_mul_mat(ctx, x, y);
        if (!ggml_are_same_shape(r, node) || r->type != node->type) {
            throw train_error(fmt("internal error: %s as mul_mat has another shape", node->name));
        }
        r->flags |= node->flags;
        ggml_format_name(r, "%s (mul_mat)", node->name);
        repl[node] = r;
        ggml_build_forward_expand(g, r);
    }
    return g;
}

// can_cast_to_f32 reports whether w's own device copies it to F32 (a CPY
// node), so that the backward pass can convert it step by step instead of
// keeping an F32 copy. As a GPU: the type pairs CUDA's CPY implements
// (ggml-cuda.cu:4720-4775). Never for weights on the CPU: there the forward
// pass would then multiply by the F16 matrix itself, whose CPU kernel rounds
// the activations to F16 (as inference does), and CPU training results would
// change; host memory is the cheaper kind, so CPU keeps the F32 copies.
bool can_cast_to_f32(const cp_trainer & t, ggml_tensor * w) {
    if (t.as_gpu) {
        switch (w->type) {
            case GGML_TYPE_F16: case GGML_TYPE_BF16: case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_0:
            case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1:
                return true;
            default:
                return false;
        }
    }
    ggml_backend_dev_t dev = tensor_device(w);
    if (dev == nullptr || ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) {
        return false;
    }
    // a metadata-only context for the one probe node
    ggml_context * probe = meta_ctx(1);
    const bool     ok    = ggml_backend_dev_supports_op(dev, ggml_cast(probe, w, GGML_TYPE_F32));
    ggml_free(probe);
    return ok;
}

// cast_out_prod_weights returns gb with every OUT_PROD that reads a weight
// of cast_in_graph reading an F32 copy of it made just before (ggml_cast).
// ggml differentiates y = W·x with respect to x as OUT_PROD(W, dy), and
// CUDA's OUT_PROD takes F32 only; a copy per use costs one pass over W per
// step, where persistent F32 copies of an 8B model's matrices cost 30 GB.
// The graph allocator frees each copy once its OUT_PROD has run.
ggml_cgraph * cast_out_prod_weights(cp_trainer & t, ggml_context * ctx, ggml_cgraph * gb) {
    ggml_cgraph * g = ggml_new_graph_custom(ctx, t.max_nodes, false);
    for (int i = 0; i < ggml_graph_n_nodes(gb); ++i) {
        ggml_tensor * node = ggml_graph_node(gb, i);
        if (node->op == GGML_OP_OUT_PROD && t.cast_in_graph.count(node->src[0])) {
            ggml_tensor * c = ggml_cast(ctx, node->src[0], GGML_TYPE_F32);
            ggml_format_name(c, "%s (f32 for the backward pass)", node->src[0]->name);
            node->src[0] = c;
        }
        ggml_build_forward_expand(g, node);
    }
    return g;
}

// contiguous_acc_sources returns gb with a contiguous copy of the second
// source of every GGML_OP_ACC that has a non-contiguous one. ggml
// differentiates a view (llama.cpp's attention takes one of Q, llama-graph.cpp
// build_attn_mha) into an ACC of the view's gradient, which there is the
// permuted gradient of the attention input, so not contiguous. CUDA accepts
// every ACC in supports_op, then its kernel asserts a contiguous src1
// (cudacontract.go cites both lines): the process would abort at the first
// step. The copy changes no value, so CPU results stay bit-identical; it
// costs one pass over the gradient of Q per layer.
ggml_cgraph * contiguous_acc_sources(cp_trainer & t, ggml_context * ctx, ggml_cgraph * gb) {
    bool any = false;
    for (int i = 0; i < ggml_graph_n_nodes(gb); ++i) {
        ggml_tensor * node = ggml_graph_node(gb, i);
        any = any || (node->op == GGML_OP_ACC && !ggml_is_contiguous(node->src[1]));
    }
    if (!any) {
        return gb;
    }
    ggml_cgraph * g = ggml_new_graph_custom(ctx, t.max_nodes, false);
    for (int i = 0; i < ggml_graph_n_nodes(gb); ++i) {
        ggml_tensor * node = ggml_graph_node(gb, i);
        if (node->op == GGML_OP_ACC && !ggml_is_contiguous(node->src[1])) {
            node->src[1] = ggml_cont(ctx, node->src[1]);
        }
        ggml_build_forward_expand(g, node);
    }
    return g;
}

// build_step makes the graph for one batch. The batch allocator validates
// tokens, sequences and positions exactly as llama_decode would.
void build_step(cp_trainer & t, built & b, const llama_token * tokens, const llama_pos * pos, const llama_seq_id * seq,
                const llama_token * labels, int32_t n, bool backward) {
    if (n <= 0 || n > t.max_tokens) {
        throw train_error(fmt("batch of %d tokens; this trainer takes 1 to %d", n, t.max_tokens));
    }
    std::vector<int32_t>        n_seq_id(n, 1);
    std::vector<llama_seq_id>   seq_copy(seq, seq + n);
    std::vector<llama_seq_id *> seq_ptr(n);
    std::vector<int8_t>         out(n);
    for (int32_t i = 0; i < n; ++i) {
        seq_ptr[i] = &seq_copy[i];
        out[i]     = labels[i] >= 0;
        if (labels[i] >= (llama_token) t.model->vocab.n_tokens()) {
            throw train_error(fmt("label %d at batch position %d is outside the vocabulary", labels[i], i));
        }
    }
    llama_batch batch = {
        /*.n_tokens =*/ n,
        /*.token    =*/ const_cast<llama_token *>(tokens),
        /*.embd     =*/ nullptr,
        /*.pos      =*/ const_cast<llama_pos *>(pos),
        /*.n_seq_id =*/ n_seq_id.data(),
        /*.seq_id   =*/ seq_ptr.data(),
        /*.logits   =*/ out.data(),
    };
    const auto & hp = t.model->hparams;
    if (!t.balloc->init(batch, t.model->vocab, nullptr, hp.n_embd_inp(), LLAMA_MAX_SEQ, false)) {
        throw train_error("invalid training batch (see the llama.cpp log above)");
    }
    b.n_outputs = t.balloc->get_n_outputs();
    if (b.n_outputs == 0) {
        throw train_error("training batch has no scored token");
    }
    t.balloc->split_reset();
    b.ubatch = t.balloc->split_simple(n);
    if (b.ubatch.n_tokens != (uint32_t) n) {
        throw train_error("internal error: batch was split");
    }

    t.res->reset();
    llm_graph_params gp{};
    gp.arch        = t.model->arch;
    gp.hparams     = hp;
    gp.cparams     = t.cparams;
    gp.ubatch      = b.ubatch;
    gp.gtype       = LLM_GRAPH_TYPE_DEFAULT;
    gp.sched       = t.sched;
    gp.backend_cpu = t.backend_cpu;
    gp.cvec        = &t.cvec;
    gp.loras       = &t.no_loras;
    gp.mctx        = nullptr;
    gp.cross       = &t.cross;
    gp.n_outputs   = b.n_outputs;
    gp.cb          = [](const llama_ubatch &, ggml_tensor * cur, const char * name, int il) {
        if (il >= 0) {
            ggml_format_name(cur, "%s-%d", name, il);
        } else {
            ggml_set_name(cur, name);
        }
    };
    gp.res = t.res.get();

    if (backward) {
        t.set_param_flags();
    }
    struct clear_flags {
        cp_trainer & t;
        ~clear_flags() { t.clear_param_flags(); }
    } guard{t};

    train_graph g(*t.model, gp, t);
    ggml_cgraph * gf = t.res->get_gf();

    b.ctx    = step_ctx(t);
    b.labels = ggml_new_tensor_2d(b.ctx, GGML_TYPE_F32, g.logits->ne[0], g.logits->ne[1]);
    ggml_set_input(b.labels);
    ggml_set_name(b.labels, "labels");
    b.loss = ggml_cross_entropy_loss(b.ctx, g.logits, b.labels);
    ggml_set_name(b.loss, "loss");
    ggml_set_output(b.loss);
    b.pred = ggml_argmax(b.ctx, g.logits);
    ggml_set_name(b.pred, "pred");
    ggml_set_output(b.pred);
    ggml_build_forward_expand(gf, b.pred);
    if (!backward) {
        ggml_build_forward_expand(gf, b.loss);
        b.graph = gf;
        return;
    }
    ggml_set_loss(b.loss);
    ggml_build_forward_expand(gf, b.loss);

    ggml_cgraph * gb = ggml_graph_dup(b.ctx, gf, /*force_grads =*/ true);
    std::unordered_map<const ggml_tensor *, ggml_tensor *> acc;
    for (auto & p : t.params) {
        acc[p.value] = p.grad;
    }
    acc[b.loss] = t.seed;
    std::vector<ggml_tensor *> grad_accs(ggml_graph_n_nodes(gb), nullptr);
    for (int i = 0; i < ggml_graph_n_nodes(gb); ++i) {
        auto it = acc.find(ggml_graph_node(gb, i));
        if (it != acc.end()) {
            grad_accs[i] = it->second;
        }
    }
    ggml_build_backward_expand(b.ctx, gb, grad_accs.data());
    if (!t.cast_in_graph.empty()) {
        gb = cast_out_prod_weights(t, b.ctx, gb);
    }
    if (!t.raw_backward) {
        gb = contiguous_acc_sources(t, b.ctx, gb);
    }
    if (t.cpu_only()) {
        gb = out_prods_as_mul_mats(t, b.ctx, gb);
    }
    protect_from_aliasing(gb);
    b.graph = gb;
}

// run allocates the graph on the scheduler, sets its inputs and computes it.
void run(cp_trainer & t, built & b, const llama_token * labels, int32_t n) {
    ggml_backend_sched_reset(t.sched);
    if (!ggml_backend_sched_alloc_graph(t.sched, b.graph)) {
        throw train_error(fmt("out of memory allocating the training graph for %d tokens (try a smaller --batch)", n));
    }
    t.res->set_inputs(&b.ubatch);

    // one-hot labels, one row per scored token in batch order
    ggml_backend_tensor_memset(b.labels, 0, 0, ggml_nbytes(b.labels));
    const float one  = 1.0f;
    int64_t     row  = 0;
    const int64_t nv = b.labels->ne[0];
    for (int32_t i = 0; i < n; ++i) {
        if (labels[i] < 0) {
            continue;
        }
        ggml_backend_tensor_set(b.labels, &one, (row * nv + labels[i]) * sizeof(float), sizeof(float));
        row++;
    }
    int64_t compute = 0;
    for (auto * be : t.backends) {
        compute += ggml_backend_sched_get_buffer_size(t.sched, be);
    }
    t.compute_bytes = std::max(t.compute_bytes, compute);
    const ggml_status st = ggml_backend_sched_graph_compute(t.sched, b.graph);
    if (st != GGML_STATUS_SUCCESS) {
        throw train_error(fmt("graph computation failed (status %d)", (int) st));
    }
}

// plan_upcasts builds one backward graph without computing it and finds
// every base matrix whose gradient flows through ggml_out_prod (the
// derivative of a matrix product with respect to its input). Backends do not
// implement that op for every weight type (the CPU lacks F16 and BF16, CUDA
// supports only F32), so those matrices get a one-time F32 copy that the
// training graph uses instead. Any other op of the backward graph no backend
// supports is an error now rather than an abort mid-training.
void plan_upcasts(cp_trainer & t) {
    std::vector<llama_token>  tok(2, 0);
    std::vector<llama_pos>    pos = {0, 1};
    std::vector<llama_seq_id> seq(2, 0);
    std::vector<llama_token>  lab = {0, 0};

    std::unordered_map<const ggml_tensor *, bool> model_tensor;
    for (auto & nt : t.model->tensors_by_name) {
        model_tensor[nt.second] = true;
    }
    // a tied output matrix is a duplicate of token_embd, not listed by name
    model_tensor[t.model->output] = true;

    std::vector<ggml_tensor *> need;
    {
        built b;
        build_step(t, b, tok.data(), pos.data(), seq.data(), lab.data(), 2, true);
        for (int i = 0; i < ggml_graph_n_nodes(b.graph); ++i) {
            ggml_tensor * node = ggml_graph_node(b.graph, i);
            if (node->op != GGML_OP_OUT_PROD || !model_tensor.count(node->src[0])) {
                continue;
            }
            ggml_tensor *      w   = node->src[0];
            ggml_backend_dev_t dev = tensor_device(w);
            if (dev == nullptr) {
                throw train_error(fmt("base tensor %s has no data", w->name));
            }
            ggml_backend_buffer_type_t buft = ggml_backend_buffer_get_type(w->buffer);
            if (!ggml_backend_buft_is_host(buft) && ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) {
                throw train_error(fmt("base tensor %s (%s) is in the repacked %s buffer, which the backward pass cannot read; "
                                      "load the model without weight repacking", w->name, ggml_type_name(w->type), ggml_backend_buft_name(buft)));
            }
            // as a GPU: CUDA's OUT_PROD takes F32 operands only (see
            // cudacontract.go), so every other weight type is copied
            if (t.as_gpu ? w->type != GGML_TYPE_F32 : !ggml_backend_dev_supports_op(dev, node)) {
                need.push_back(w);
            }
        }
    }
    std::map<ggml_backend_buffer_type_t, std::vector<ggml_tensor *>> by_buft;
    std::unordered_map<const ggml_tensor *, bool> seen;
    for (ggml_tensor * w : need) {
        if (seen[w]) {
            continue;
        }
        seen[w] = true;
        if (can_cast_to_f32(t, w)) {
            t.cast_in_graph[w] = true;
            continue;
        }
        if (ggml_get_type_traits(w->type)->to_float == nullptr) {
            throw train_error(fmt("base tensor %s has type %s, which cannot be converted for the backward pass", w->name, ggml_type_name(w->type)));
        }
        by_buft[ggml_backend_buffer_get_type(w->buffer)].push_back(w);
    }
    for (auto & kv : by_buft) {
        ggml_context * ctx = meta_ctx(kv.second.size());
        std::vector<std::pair<ggml_tensor *, ggml_tensor *>> pairs;
        for (ggml_tensor * w : kv.second) {
            ggml_tensor * c = ggml_new_tensor(ctx, GGML_TYPE_F32, GGML_MAX_DIMS, w->ne);
            ggml_format_name(c, "%s (f32)", w->name);
            pairs.push_back({w, c});
        }
        t.upcast_bytes += alloc_group(t.upcast_bufs, ctx, kv.first, "F32 copies of base weights", t.graph_only);
        if (t.graph_only) {
            for (auto & pr : pairs) {
                t.upcast[pr.first] = pr.second;
            }
            continue;
        }
        std::vector<uint8_t> raw;
        std::vector<float>   f32;
        for (auto & pr : pairs) {
            ggml_tensor * w = pr.first;
            raw.resize(ggml_nbytes(w));
            f32.resize(ggml_nelements(w));
            ggml_backend_tensor_get(w, raw.data(), 0, raw.size());
            ggml_get_type_traits(w->type)->to_float(raw.data(), f32.data(), ggml_nelements(w));
            ggml_backend_tensor_set(pr.second, f32.data(), 0, f32.size() * sizeof(float));
            t.upcast[w] = pr.second;
        }
    }

    // check the final backward graph: every node must run on some backend
    built b;
    build_step(t, b, tok.data(), pos.data(), seq.data(), lab.data(), 2, true);
    for (int i = 0; i < ggml_graph_n_nodes(b.graph); ++i) {
        ggml_tensor * node = ggml_graph_node(b.graph, i);
        if (node->op == GGML_OP_NONE || ggml_is_empty(node)) {
            continue;
        }
        bool ok = false;
        for (auto * be : t.backends) {
            if (ggml_backend_supports_op(be, node)) {
                ok = true;
                break;
            }
        }
        if (!ok) {
            throw train_error(fmt("no backend can compute %s (%s of %s) in the backward pass", node->name, ggml_op_desc(node),
                                  node->src[0] ? ggml_type_name(node->src[0]->type) : "-"));
        }
    }
}

// build_synthetic_step builds the step graph of a batch of n_seqs rows of
// (nearly) equal length and n_tokens tokens in all, every next token scored
// but each row's last; token ids are arbitrary. For checking and sizing.
void build_synthetic_step(cp_trainer & t, built & b, int32_t n_tokens, int32_t n_seqs) {
    if (n_seqs < 1 || n_tokens < n_seqs) {
        throw train_error(fmt("a batch of %d tokens cannot hold %d sequences", n_tokens, n_seqs));
    }
    const int32_t             nv = (int32_t) t.model->vocab.n_tokens();
    std::vector<llama_token>  tok(n_tokens), lab(n_tokens);
    std::vector<llama_pos>    pos(n_tokens);
    std::vector<llama_seq_id> seq(n_tokens);
    const int32_t             per = n_tokens / n_seqs;
    for (int32_t i = 0; i < n_tokens; ++i) {
        const int32_t s = std::min(i / per, n_seqs - 1);
        seq[i]          = s;
        pos[i]          = i - s * per;
        tok[i]          = (i * 7 + 3) % nv;
        lab[i]          = -1;
    }
    for (int32_t i = 0; i + 1 < n_tokens; ++i) {
        if (seq[i + 1] == seq[i]) {
            lab[i] = tok[i + 1];
        }
    }
    build_step(t, b, tok.data(), pos.data(), seq.data(), lab.data(), n_tokens, true);
}

// check_trainable refuses work that needs data from a graph-only trainer.
void check_trainable(const cp_trainer & t) {
    if (t.graph_only) {
        throw train_error("this trainer only builds graphs (graph_only): it holds no data to train");
    }
}

// build_grad_norm is the graph of the squared gradient sums, one per
// parameter, in sums.
ggml_cgraph * build_grad_norm(cp_trainer & t, ggml_context * ctx, std::vector<ggml_tensor *> & sums) {
    ggml_cgraph * g = ggml_new_graph_custom(ctx, t.max_nodes, false);
    for (auto & p : t.params) {
        ggml_tensor * s = ggml_sum(ctx, ggml_sqr(ctx, p.grad));
        ggml_set_output(s);
        ggml_build_forward_expand(g, s);
        sums.push_back(s);
    }
    return g;
}

// build_adamw is the graph of one optimizer step over every parameter.
ggml_cgraph * build_adamw(cp_trainer & t, ggml_context * ctx, float grad_scale) {
    ggml_cgraph * g = ggml_new_graph_custom(ctx, t.max_nodes, false);
    for (auto & q : t.params) {
        ggml_tensor * grad = q.grad;
        if (grad_scale != 1.0f) {
            grad = ggml_scale(ctx, grad, grad_scale);
        }
        // decay matrices only: shrinking norm weights and biases
        // towards 0 is not regularisation
        ggml_tensor * pars_t = ggml_n_dims(q.value) >= 2 ? t.adamw_params : t.adamw_params_nodecay;
        ggml_tensor * step   = ggml_opt_step_adamw(ctx, q.value, grad, q.m, q.v, pars_t);
        ggml_build_forward_expand(g, step);
        if (t.tied_output != nullptr && q.value == t.model->tok_embd) {
            ggml_build_forward_expand(g, ggml_cpy(ctx, step, t.tied_output));
        }
    }
    return g;
}

void check_index(const cp_trainer * t, int32_t i) {
    if (i < 0 || (size_t) i >= t->params.size()) {
        throw train_error(fmt("tensor index %d out of range", i));
    }
}

ggml_tensor * kind_tensor(const trainable & p, int32_t kind) {
    switch (kind) {
        case CP_TRAIN_VALUE: return p.value;
        case CP_TRAIN_M:     return p.m;
        case CP_TRAIN_V:     return p.v;
        case CP_TRAIN_GRAD:  return p.grad;
    }
    throw train_error(fmt("unknown tensor kind %d", kind));
}

// guarded runs f, turning exceptions into an error message and -1 (the
// one way of guard.hpp, for trainer calls that return nothing).
template <typename F>
int32_t guarded(char * err, size_t len, F f) {
    return cp_guarded(err, len, "unknown C++ exception in the trainer", (int32_t) -1, [&]() {
        f();
        return (int32_t) 0;
    });
}

// new_trainer is cp_train_new and cp_train_new_full: adapter null means
// every model weight is trained.
cp_trainer * new_trainer(struct llama_model * model, struct llama_adapter_lora * adapter, cp_train_config cfg, char * err, size_t err_len) {
    cp_trainer * t = nullptr;
    const int32_t rc = guarded(err, err_len, [&]() {
        if (cfg.max_tokens <= 0) {
            throw train_error("max_tokens must be positive");
        }
        check_model(*model);
        auto tr        = std::make_unique<cp_trainer>();
        tr->model      = model;
        tr->adapter    = adapter;
        tr->full       = adapter == nullptr;
        tr->max_tokens = cfg.max_tokens;
        tr->graph_only = cfg.graph_only;
        tr->as_gpu     = cfg.as_gpu;
        tr->raw_backward = cfg.raw_backward;
        tr->cparams    = derive_cparams(model, std::max(1, cfg.n_threads), cfg.max_tokens);
        // forward, backward and optimizer nodes, with room to spare: the
        // adapter adds five nodes per adapted matrix, the backward pass
        // roughly doubles the graph
        const size_t n_ab = adapter ? adapter->ab_map.size() : 0;
        tr->max_nodes = std::max<int64_t>(16384, 24 * (int64_t) (model->tensors_by_name.size() + 4 * n_ab));
        init_backends(*tr, std::max(1, cfg.n_threads));
        tr->sched = ggml_backend_sched_new(tr->backends.data(), tr->bufts.data(), (int) tr->backends.size(),
                                           tr->max_nodes, /*parallel =*/ false, /*op_offload =*/ true);
        if (tr->sched == nullptr) {
            throw train_error("could not create the ggml scheduler");
        }
        tr->balloc.reset(new llama_batch_allocr(model->hparams.n_pos_per_embd()));
        tr->res.reset(new llm_graph_result(tr->max_nodes));
        if (tr->full) {
            init_params_full(*tr);
        } else {
            init_params(*tr);
        }
        init_state(*tr);
        plan_upcasts(*tr);
        t = tr.release();
    });
    return rc == 0 ? t : nullptr;
}

} // namespace

extern "C" {

cp_trainer * cp_train_new(struct llama_model * model, struct llama_adapter_lora * adapter, cp_train_config cfg, char * err, size_t err_len) {
    if (adapter == nullptr) {
        set_err(err, err_len, "no adapter");
        return nullptr;
    }
    return new_trainer(model, adapter, cfg, err, err_len);
}

cp_trainer * cp_train_new_full(struct llama_model * model, cp_train_config cfg, char * err, size_t err_len) {
    return new_trainer(model, nullptr, cfg, err, err_len);
}

void cp_train_free(cp_trainer * t) {
    delete t;
}

int32_t cp_train_n_tensors(const cp_trainer * t) {
    return (int32_t) t->params.size();
}

const char * cp_train_tensor_name(const cp_trainer * t, int32_t i) {
    if (i < 0 || (size_t) i >= t->params.size()) {
        return "";
    }
    return t->params[i].name.c_str();
}

int64_t cp_train_tensor_ne(const cp_trainer * t, int32_t i, int32_t dim) {
    if (i < 0 || (size_t) i >= t->params.size() || dim < 0 || dim >= GGML_MAX_DIMS) {
        return 0;
    }
    return t->params[i].value->ne[dim];
}

const char * cp_train_gpu(const cp_trainer * t) {
    for (auto * b : t->backends) {
        if (b != t->backend_cpu) {
            return ggml_backend_name(b);
        }
    }
    return "";
}

int64_t cp_train_upcast_bytes(const cp_trainer * t) {
    return t->upcast_bytes;
}

int64_t cp_train_state_bytes(const cp_trainer * t) {
    return t->state_bytes;
}

int64_t cp_train_compute_bytes(const cp_trainer * t) {
    return t->compute_bytes;
}

int32_t cp_train_tensor_get(cp_trainer * t, int32_t i, int32_t kind, float * dst, int64_t n, char * err, size_t err_len) {
    return guarded(err, err_len, [&]() {
        check_trainable(*t);
        check_index(t, i);
        ggml_tensor * x = kind_tensor(t->params[i], kind);
        if (n != ggml_nelements(x)) {
            throw train_error(fmt("%s has %lld values, buffer holds %lld", x->name, (long long) ggml_nelements(x), (long long) n));
        }
        ggml_backend_tensor_get(x, dst, 0, ggml_nbytes(x));
    });
}

int32_t cp_train_tensor_set(cp_trainer * t, int32_t i, int32_t kind, const float * src, int64_t n, char * err, size_t err_len) {
    return guarded(err, err_len, [&]() {
        check_trainable(*t);
        check_index(t, i);
        ggml_tensor * x = kind_tensor(t->params[i], kind);
        if (n != ggml_nelements(x)) {
            throw train_error(fmt("%s has %lld values, got %lld", x->name, (long long) ggml_nelements(x), (long long) n));
        }
        ggml_backend_tensor_set(x, src, 0, ggml_nbytes(x));
    });
}

int32_t cp_train_batch(cp_trainer * t, const llama_token * tokens, const llama_pos * pos, const llama_seq_id * seq,
                       const llama_token * labels, int32_t n, bool backward, float weight,
                       cp_train_result * res, char * err, size_t err_len) {
    return guarded(err, err_len, [&]() {
        check_trainable(*t);
        built b;
        build_step(*t, b, tokens, pos, seq, labels, n, backward);
        // ggml's cross-entropy is the mean over the rows of the batch; the
        // seed makes the differentiated quantity weight * (sum over rows)
        const float seed = weight * (float) b.n_outputs;
        ggml_backend_tensor_set(t->seed, &seed, 0, sizeof(float));
        run(*t, b, labels, n);

        float loss = 0.0f;
        ggml_backend_tensor_get(b.loss, &loss, 0, sizeof(float));
        std::vector<int32_t> pred(b.n_outputs);
        ggml_backend_tensor_get(b.pred, pred.data(), 0, pred.size() * sizeof(int32_t));
        int32_t correct = 0;
        int32_t row     = 0;
        for (int32_t i = 0; i < n; ++i) {
            if (labels[i] >= 0) {
                correct += pred[row++] == labels[i];
            }
        }
        res->loss_sum  = (double) loss * b.n_outputs;
        res->n_scored  = (int32_t) b.n_outputs;
        res->n_correct = correct;
    });
}

int32_t cp_train_plan_compute(cp_trainer * t, int32_t n_tokens, int32_t n_seqs, int64_t * bytes, char * err, size_t err_len) {
    return guarded(err, err_len, [&]() {
        built b;
        build_synthetic_step(*t, b, n_tokens, n_seqs);
        std::vector<size_t> sizes(t->backends.size(), 0);
        ggml_backend_sched_reserve_size(t->sched, b.graph, sizes.data());
        ggml_backend_sched_reset(t->sched);
        int64_t total = 0;
        for (size_t s : sizes) {
            total += (int64_t) s;
        }
        *bytes = total;
    });
}

int32_t cp_train_graph(cp_trainer * t, int32_t kind, int32_t n_tokens, int32_t n_seqs, int32_t * n_out, char * err, size_t err_len) {
    return guarded(err, err_len, [&]() {
        cp_graph_collector & c = t->described;
        c.rows.clear();
        c.index.clear();
        if (kind == CP_GRAPH_STEP) {
            built b;
            build_synthetic_step(*t, b, n_tokens, n_seqs);
            c.add_graph(b.graph);
        } else if (kind == CP_GRAPH_ADAMW || kind == CP_GRAPH_GRAD_NORM) {
            ggml_context * ctx = step_ctx(*t);
            struct free_ctx {
                ggml_context * c;
                ~free_ctx() { ggml_free(c); }
            } guard{ctx};
            if (kind == CP_GRAPH_ADAMW) {
                t->set_param_flags();
                struct clear_flags {
                    cp_trainer * t;
                    ~clear_flags() { t->clear_param_flags(); }
                } guard2{t};
                c.add_graph(build_adamw(*t, ctx, 0.5f)); // a clipping scale, so the SCALE node is there
            } else {
                std::vector<ggml_tensor *> sums;
                c.add_graph(build_grad_norm(*t, ctx, sums));
            }
        } else {
            throw train_error(fmt("unknown graph kind %d", kind));
        }
        // the rows stay for cp_train_graph_rows; the tensors they came from
        // are gone (their contexts are freed), only the copies remain
        c.index.clear();
        *n_out = (int32_t) c.rows.size();
    });
}

int32_t cp_train_graph_rows(const cp_trainer * t, cp_graph_tensor * out, int32_t cap) {
    const size_t n = std::min<size_t>(t->described.rows.size(), (size_t) std::max(cap, 0));
    std::copy(t->described.rows.begin(), t->described.rows.begin() + n, out);
    return (int32_t) n;
}

int32_t cp_train_zero_grad(cp_trainer * t, char * err, size_t err_len) {
    return guarded(err, err_len, [&]() {
        check_trainable(*t);
        for (auto & g : t->grad_bufs) {
            ggml_backend_buffer_clear(g->buf, 0);
        }
    });
}

int32_t cp_train_grad_norm(cp_trainer * t, double * norm, char * err, size_t err_len) {
    return guarded(err, err_len, [&]() {
        ggml_context * ctx = step_ctx(*t);
        struct free_ctx {
            ggml_context * c;
            ~free_ctx() { ggml_free(c); }
        } guard{ctx};
        check_trainable(*t);
        std::vector<ggml_tensor *> sums;
        ggml_cgraph *              g = build_grad_norm(*t, ctx, sums);
        ggml_backend_sched_reset(t->sched);
        if (!ggml_backend_sched_alloc_graph(t->sched, g)) {
            throw train_error("out of memory computing the gradient norm");
        }
        if (ggml_backend_sched_graph_compute(t->sched, g) != GGML_STATUS_SUCCESS) {
            throw train_error("gradient norm computation failed");
        }
        double total = 0;
        for (auto * s : sums) {
            float v = 0;
            ggml_backend_tensor_get(s, &v, 0, sizeof(float));
            total += v;
        }
        *norm = std::sqrt(total);
    });
}

int32_t cp_train_adamw(cp_trainer * t, cp_adamw p, char * err, size_t err_len) {
    return guarded(err, err_len, [&]() {
        check_trainable(*t);
        if (!(p.lr > 0) || p.t < 1 || !(p.beta1 >= 0 && p.beta1 < 1) || !(p.beta2 >= 0 && p.beta2 < 1) || p.eps < 0 || p.wd < 0) {
            throw train_error("invalid AdamW parameters");
        }
        const float pars[7] = {
            p.lr, p.beta1, p.beta2, p.eps, p.wd,
            1.0f / (1.0f - powf(p.beta1, (float) p.t)),
            1.0f / (1.0f - powf(p.beta2, (float) p.t)),
        };
        ggml_backend_tensor_set(t->adamw_params, pars, 0, sizeof(pars));
        float nodecay[7];
        std::copy(pars, pars + 7, nodecay);
        nodecay[4] = 0.0f;
        ggml_backend_tensor_set(t->adamw_params_nodecay, nodecay, 0, sizeof(nodecay));

        ggml_context * ctx = step_ctx(*t);
        struct free_ctx {
            ggml_context * c;
            ~free_ctx() { ggml_free(c); }
        } guard{ctx};
        t->set_param_flags();
        struct clear_flags {
            cp_trainer * t;
            ~clear_flags() { t->clear_param_flags(); }
        } guard2{t};
        ggml_cgraph * g = build_adamw(*t, ctx, p.grad_scale);
        ggml_backend_sched_reset(t->sched);
        if (!ggml_backend_sched_alloc_graph(t->sched, g)) {
            throw train_error("out of memory for the optimizer step");
        }
        if (ggml_backend_sched_graph_compute(t->sched, g) != GGML_STATUS_SUCCESS) {
            throw train_error("optimizer step failed");
        }
    });
}

} // extern "C"
