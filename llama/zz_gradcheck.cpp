// temporary debugging harness (not committed)
#include "ggml.h"
#include "ggml-cpu.h"
#include <cstdio>
#include <cmath>
#include <functional>
#include <random>
#include <vector>
#include <cstring>
extern "C" void cp_debug_gradcheck(void);

static void fill(ggml_tensor * t, std::mt19937 & rng) {
    std::normal_distribution<float> nd(0, 1);
    float * d = (float *) t->data;
    for (int64_t i = 0; i < ggml_nelements(t); i++) d[i] = nd(rng);
}

static void check(const char * name, std::function<ggml_tensor*(ggml_context*, ggml_tensor*, ggml_tensor*)> f, int64_t ne0a, int64_t ne1a, int64_t ne0b, int64_t ne1b) {
    ggml_init_params ip = { 256*1024*1024, nullptr, false };
    ggml_context * ctx = ggml_init(ip);
    std::mt19937 rng(1);
    ggml_tensor * a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, ne0a, ne1a);
    ggml_tensor * b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, ne0b, ne1b);
    fill(a, rng); fill(b, rng);
    ggml_set_param(a);
    ggml_tensor * out = f(ctx, a, b);
    // loss = sum(out * w) with random w
    ggml_tensor * w = ggml_new_tensor(ctx, GGML_TYPE_F32, 4, out->ne);
    fill(w, rng);
    ggml_tensor * loss = ggml_sum(ctx, ggml_mul(ctx, out, w));
    ggml_set_loss(loss);
    ggml_cgraph * gf = ggml_new_graph_custom(ctx, 4096, true);
    ggml_build_forward_expand(gf, loss);
    ggml_cgraph * gb = ggml_graph_dup(ctx, gf, true);
    ggml_build_backward_expand(ctx, gb, nullptr);
    ggml_graph_reset(gb);
    ggml_graph_compute_with_ctx(ctx, gb, 1);
    ggml_tensor * ga = ggml_graph_get_grad(gb, a);
    double maxerr = 0, maxg = 0;
    for (int k = 0; k < 8 && k < ggml_nelements(a); k++) {
        int64_t i = (k * 7919) % ggml_nelements(a);
        float * ad = (float *) a->data;
        float old = ad[i];
        const float eps = 1e-3f;
        ad[i] = old + eps; ggml_graph_compute_with_ctx(ctx, gf, 1); double lp = ((float*)loss->data)[0];
        ad[i] = old - eps; ggml_graph_compute_with_ctx(ctx, gf, 1); double lm = ((float*)loss->data)[0];
        ad[i] = old;
        double fd = (lp - lm) / (2*eps);
        double g = ((float*)ga->data)[i];
        maxerr = std::max(maxerr, std::fabs(fd - g));
        maxg = std::max(maxg, std::fabs(g));
    }
    printf("%-28s max |grad - fd| = %.5f (max |grad| %.4f)\n", name, maxerr, maxg); fflush(stdout);
    ggml_free(ctx);
}

void cp_debug_gradcheck(void) {
    check("mul_mat src1", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){ return ggml_mul_mat(c, b, a); }, 16, 5, 16, 7);
    check("mul_mat src0", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){ return ggml_mul_mat(c, a, b); }, 16, 7, 16, 5);
    check("mul_mat src1 r4", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){ return ggml_mul_mat(c, b, a); }, 4, 5, 4, 64);
    check("mul_mat src1 big", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){ return ggml_mul_mat(c, b, a); }, 64, 9, 64, 128);
    check("rms_norm", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){ return ggml_rms_norm(c, a, 1e-5f); }, 64, 5, 1, 1);
    check("mul bcast", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){ return ggml_mul(c, a, b); }, 64, 5, 64, 1);
    check("swiglu src0", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){ return ggml_swiglu_split(c, a, b); }, 16, 5, 16, 5);
    check("swiglu src1", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){ return ggml_swiglu_split(c, b, a); }, 16, 5, 16, 5);
    check("scale", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){ return ggml_scale(c, a, 0.7f); }, 16, 5, 1, 1);
    check("get_rows", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){
        ggml_tensor * idx = ggml_new_tensor_1d(c, GGML_TYPE_I32, 3); ((int*)idx->data)[0]=1; ((int*)idx->data)[1]=4; ((int*)idx->data)[2]=2;
        return ggml_get_rows(c, a, idx); }, 16, 5, 1, 1);
    check("softmax mask scale", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){
        ggml_tensor * m = ggml_new_tensor_2d(c, GGML_TYPE_F32, 6, 6); float * d=(float*)m->data; for(int i=0;i<6;i++)for(int j=0;j<6;j++) d[i*6+j] = j<=i?0:-INFINITY;
        ggml_tensor * x = ggml_reshape_3d(c, a, 6, 6, 2);
        return ggml_soft_max_ext(c, x, m, 0.5f, 0.0f); }, 36, 2, 1, 1);
    check("cross_entropy", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){
        ggml_tensor * l = ggml_new_tensor_2d(c, GGML_TYPE_F32, 10, 4); memset(l->data, 0, ggml_nbytes(l)); for(int i=0;i<4;i++) ((float*)l->data)[i*10+i]=1;
        return ggml_cross_entropy_loss(c, a, l); }, 10, 4, 1, 1);
    check("rope", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){
        ggml_tensor * p = ggml_new_tensor_1d(c, GGML_TYPE_I32, 3); for(int i=0;i<3;i++) ((int*)p->data)[i]=i;
        ggml_tensor * x = ggml_reshape_3d(c, a, 16, 2, 3);
        return ggml_rope_ext(c, x, p, nullptr, 16, 0, 4096, 10000.f, 1.f, 0.f, 1.f, 32.f, 1.f); }, 32, 3, 1, 1);
    check("cont transpose", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){ return ggml_cont(c, ggml_transpose(c, a)); }, 16, 5, 1, 1);
    check("mul_mat 3d bcast src1", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){
        ggml_tensor * k = ggml_reshape_3d(c, b, 8, 6, 2); ggml_tensor * q = ggml_reshape_3d(c, a, 8, 5, 4);
        return ggml_mul_mat(c, k, q); }, 40, 4, 96, 1);
    check("mul_mat 3d bcast src0", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){
        ggml_tensor * k = ggml_reshape_3d(c, a, 8, 6, 2); ggml_tensor * q = ggml_reshape_3d(c, b, 8, 5, 4);
        return ggml_mul_mat(c, k, q); }, 96, 1, 40, 4);
    check("mul_mat permuted", [](ggml_context * c, ggml_tensor * a, ggml_tensor * b){
        ggml_tensor * q = ggml_permute(c, ggml_reshape_3d(c, a, 8, 2, 5), 0, 2, 1, 3);
        ggml_tensor * k = ggml_permute(c, ggml_reshape_3d(c, b, 8, 2, 6), 0, 2, 1, 3);
        return ggml_mul_mat(c, k, q); }, 80, 1, 96, 1);
}
