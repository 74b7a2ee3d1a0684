// One epoch of plain SGD (no momentum) for each network of a stack of small fully connected ReLU networks
// d -> h_1 -> ... -> h_L -> 1 (one logit), each network on its own minibatch order; then, optionally, every
// network's check on the whole training set. Built by sgdbayes.native with the sizes as compile-time constants:
//   -DDIMS=7,40,40,1 (input, hidden..., 1)   -DBMAX=8 (the minibatch size)
//
// Parameters are the torch stacks of sgdbayes.ensembles.FCN, used in place: layer l has W_l [M, out, in] and
// b_l [M, out] (contiguous float32). Network m is processed start to finish (all steps of the epoch) while its
// weights sit in L1/L2, so the work is in-cache arithmetic, not a stream of tiny batched GEMMs over the whole stack.
//
// Arithmetic per step (minibatch of bs <= BMAX rows, as FCN.sgd_step_ and autograd + torch.optim.SGD):
//   forward   a_0 = x, z_l = W_l a_{l-1} + b_l, a_l = relu(z_l) (hidden), logit z_L;
//   loss grad g = dLoss/dz_L of the minibatch mean: CE (sigmoid(z) - y)/bs, MSE 2(z - t)/bs;
//   backward  delta_L = g, delta_{l-1} = (W_l^T delta_l) * [z_{l-1} > 0], computed before W_l changes;
//   update    W_l -= lr * delta_l a_{l-1}^T,  b_l -= lr * sum_b delta_l.
// Activations and deltas are kept feature-major ([unit][row], rows padded to BMAX, padded rows carry zero gradient)
// so the forward and backward products vectorise over the minibatch rows; the weight gradient vectorises over the
// input units of a batch-major copy (built with -ffp-contract=fast: multiply-adds become FMAs).
// NaN propagates (relu keeps NaN), so a diverged network shows non-finite statistics.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#ifndef DIMS
#error "define DIMS, e.g. -DDIMS=7,40,40,1"
#endif
#ifndef BMAX
#error "define BMAX (the minibatch size)"
#endif

namespace {

constexpr int kDims[] = {DIMS};
constexpr int L = int(sizeof(kDims) / sizeof(int)) - 1;  // weight layers
constexpr int B_REAL = BMAX;
constexpr int pow2_at_least(int b) { int p = 4; while (p < b) p *= 2; return p; }
constexpr int BP = pow2_at_least(B_REAL);  // padded row width (feature-major rows)
constexpr int B = BP;                      // stride of a feature-major row
static_assert(L >= 1 && kDims[L] == 1, "the last layer must have one output (the logit)");

constexpr int max_width() {
  int w = 0;
  for (int l = 0; l <= L; ++l) w = kDims[l] > w ? kDims[l] : w;
  return w;
}
constexpr int W_MAX = max_width();
// row stride of layer l's weights inside the kernel (and of its batch-major input): its fan-in rounded up to a
// multiple of 8, so weight-gradient rows are whole vectors. A layer whose fan-in is not a multiple of 8 (the
// Boolean net's 7 inputs) works on a zero-padded copy of its weights for the epoch, written back at the end.
constexpr int pad8(int x) { return (x + 7) / 8 * 8; }
constexpr int stride_of(int l) { return pad8(kDims[l]); }
// rows of the output produced at once by the forward / backward-data products: ~64-128 accumulator floats
constexpr int RB = BP >= 128 ? 1 : (BP >= 32 ? 4 : 8);

// one feature-major row: the minibatch rows padded to BP, a power of two (GCC vector extension; scalar * vrow
// broadcasts, and this file is built with -ffp-contract=fast so acc += w * x becomes one FMA)
typedef float vrow __attribute__((vector_size(BP * sizeof(float))));
inline vrow vzero() { return vrow{} ; }
inline vrow relu_keep_nan(vrow z) { return z < 0.0f ? vzero() : z; }  // NaN stays NaN

struct Work {
  // feature-major activations per layer input (aT[l] holds a_l: kDims[l] x B), logits, deltas
  float* aT[L + 1];
  float* a_bm[L];          // batch-major copies of a_0 .. a_{L-1}: B x kDims[l]
  float* dT[2];            // ping-pong deltas, W_MAX x B
  float g[B];
};

// zT[o][:] = b[o] + sum_i W[o][i] * aT[i][:]  for o in [0, OUT); hidden layers apply relu
template <int IN, int S, int OUT, bool HIDDEN>
inline void forward_layer(const float* __restrict W, const float* __restrict bias, const float* __restrict aT,
                          float* __restrict zT) {
  const vrow* v = reinterpret_cast<const vrow*>(aT);
  vrow* z = reinterpret_cast<vrow*>(zT);
  constexpr int OEND = OUT - OUT % RB;
  for (int o = 0; o < OEND; o += RB) {
    vrow acc[RB];
    for (int r = 0; r < RB; ++r) acc[r] = vzero() + bias[o + r];
    for (int i = 0; i < IN; ++i) {
      const vrow x = v[i];
      for (int r = 0; r < RB; ++r) acc[r] += W[(o + r) * S + i] * x;
    }
    for (int r = 0; r < RB; ++r) z[o + r] = HIDDEN ? relu_keep_nan(acc[r]) : acc[r];
  }
  for (int o = OEND; o < OUT; ++o) {
    vrow acc = vzero() + bias[o];
    for (int i = 0; i < IN; ++i) acc += W[o * S + i] * v[i];
    z[o] = HIDDEN ? relu_keep_nan(acc) : acc;
  }
}

// dinT[i][:] = (sum_o W[o][i] * dT[o][:]) * [aT[i][:] > 0]
template <int IN, int S, int OUT>
inline void backward_data(const float* __restrict W, const float* __restrict dT, const float* __restrict aT,
                          float* __restrict dinT) {
  const vrow* d = reinterpret_cast<const vrow*>(dT);
  const vrow* a = reinterpret_cast<const vrow*>(aT);
  vrow* out = reinterpret_cast<vrow*>(dinT);
  constexpr int IEND = IN - IN % RB;
  for (int i = 0; i < IEND; i += RB) {
    vrow acc[RB];
    for (int r = 0; r < RB; ++r) acc[r] = vzero();
    for (int o = 0; o < OUT; ++o) {
      const vrow x = d[o];
      for (int r = 0; r < RB; ++r) acc[r] += W[o * S + i + r] * x;
    }
    for (int r = 0; r < RB; ++r) out[i + r] = a[i + r] > 0.0f ? acc[r] : vzero();
  }
  for (int i = IEND; i < IN; ++i) {
    vrow acc = vzero();
    for (int o = 0; o < OUT; ++o) acc += W[o * S + i] * d[o];
    out[i] = a[i] > 0.0f ? acc : vzero();
  }
}

// Vectors of N floats at any 4-byte aligned address (loads and stores compile to unaligned vector moves).
template <int N>
struct VF {
  typedef float type __attribute__((vector_size(N * sizeof(float)), aligned(sizeof(float))));
};

// W[o][C0 : C0 + K*N] -= lr * sum_{b<bs} dT[o][b] * a[b][C0 : C0 + K*N] for rows o in [o0, o0 + R):
// R x K accumulators of N floats stay in registers over the minibatch rows, then one pass updates W.
template <int IN, int R, int C0, int N, int K>
inline void update_tile(float* __restrict W, const float* __restrict dT, const float* __restrict a, int bs,
                        float neg_lr, int o0) {
  typedef typename VF<N>::type v;
  v acc[R][K];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < K; ++k) acc[r][k] = v{};
  for (int b = 0; b < bs; ++b) {
    const v* x = reinterpret_cast<const v*>(a + b * IN + C0);
    v xs[K];
    for (int k = 0; k < K; ++k) xs[k] = x[k];
    for (int r = 0; r < R; ++r) {
      const float d = dT[(o0 + r) * B + b];
      for (int k = 0; k < K; ++k) acc[r][k] += d * xs[k];
    }
  }
  for (int r = 0; r < R; ++r) {
    v* w = reinterpret_cast<v*>(W + (o0 + r) * IN + C0);
    for (int k = 0; k < K; ++k) w[k] = w[k] + neg_lr * acc[r][k];
  }
}

// all columns of rows [o0, o0 + R), in tiles of up to 3 x 16 floats, then 8, 4 and single floats
template <int IN, int R, int C0>
inline void update_cols(float* __restrict W, const float* __restrict dT, const float* __restrict a, int bs,
                        float neg_lr, int o0) {
  constexpr int REM = IN - C0;
  if constexpr (REM >= 48) {
    update_tile<IN, R, C0, 16, 3>(W, dT, a, bs, neg_lr, o0);
    update_cols<IN, R, C0 + 48>(W, dT, a, bs, neg_lr, o0);
  } else if constexpr (REM >= 16) {
    update_tile<IN, R, C0, 16, REM / 16>(W, dT, a, bs, neg_lr, o0);
    update_cols<IN, R, C0 + 16 * (REM / 16)>(W, dT, a, bs, neg_lr, o0);
  } else if constexpr (REM >= 8) {
    update_tile<IN, R, C0, 8, 1>(W, dT, a, bs, neg_lr, o0);
    update_cols<IN, R, C0 + 8>(W, dT, a, bs, neg_lr, o0);
  } else if constexpr (REM >= 4) {
    update_tile<IN, R, C0, 4, 1>(W, dT, a, bs, neg_lr, o0);
    update_cols<IN, R, C0 + 4>(W, dT, a, bs, neg_lr, o0);
  } else if constexpr (REM >= 1) {
    update_tile<IN, R, C0, 1, REM>(W, dT, a, bs, neg_lr, o0);
  }
}

template <int IN, int OUT>
inline void update_layer(float* __restrict W, float* __restrict bias, const float* __restrict dT,
                         const float* __restrict a, int bs, float neg_lr) {
  constexpr int R = 4;
  constexpr int OEND = OUT - OUT % R;
  for (int o = 0; o < OEND; o += R) update_cols<IN, R, 0>(W, dT, a, bs, neg_lr, o);
  for (int o = OEND; o < OUT; ++o) update_cols<IN, 1, 0>(W, dT, a, bs, neg_lr, o);
  const vrow* d = reinterpret_cast<const vrow*>(dT);
  for (int q = 0; q < OUT; ++q) {  // padded rows of a delta are zero
    float s = 0.0f;
    for (int b = 0; b < BP; ++b) s += d[q][b];
    bias[q] = bias[q] + neg_lr * s;
  }
}

template <int WIDTH, int S>
inline void transpose_to_bm(const float* __restrict aT, float* __restrict a, int bs) {
  for (int b = 0; b < bs; ++b)
    for (int i = 0; i < WIDTH; ++i) a[b * S + i] = aT[i * B + b];
}

// forward through all layers, aT[0] filled; the logits end in aT[L][0:B]
template <int l>
inline void forward_all(float* const* Wn, float* const* bn, Work& w) {
  if constexpr (l < L) {
    forward_layer<kDims[l], stride_of(l), kDims[l + 1], (l + 1 < L)>(Wn[l], bn[l], w.aT[l], w.aT[l + 1]);
    forward_all<l + 1>(Wn, bn, w);
  }
}

// backward + update of layers l, l-1, ..., 1 (1-based layer l has weights Wn[l-1]); delta of layer l in dT[cur]
template <int l>
inline void backward_all(float* const* Wn, float* const* bn, Work& w, int bs, float neg_lr, int cur) {
  if constexpr (l >= 1) {
    constexpr int IN = kDims[l - 1], S = stride_of(l - 1), OUT = kDims[l];
    if constexpr (l >= 2) backward_data<IN, S, OUT>(Wn[l - 1], w.dT[cur], w.aT[l - 1], w.dT[1 - cur]);
    update_layer<S, OUT>(Wn[l - 1], bn[l - 1], w.dT[cur], w.a_bm[l - 1], bs, neg_lr);
    backward_all<l - 1>(Wn, bn, w, bs, neg_lr, 1 - cur);
  }
}

template <int l>
inline void to_batch_major(Work& w, int bs) {
  if constexpr (l < L) {
    transpose_to_bm<kDims[l], stride_of(l)>(w.aT[l], w.a_bm[l], bs);
    to_batch_major<l + 1>(w, bs);
  }
}

inline void gather(const float* X, const int64_t* idx, int bs, Work& w, bool batch_major) {
  constexpr int D = kDims[0];
  float* xT = w.aT[0];
  for (int b = 0; b < bs; ++b) {
    const float* row = X + idx[b] * D;
    for (int i = 0; i < D; ++i) xT[i * B + b] = row[i];
    if (batch_major) std::memcpy(w.a_bm[0] + b * stride_of(0), row, sizeof(float) * D);
  }
  for (int b = bs; b < B; ++b)
    for (int i = 0; i < D; ++i) xT[i * B + b] = 0.0f;
}

inline bool all_finite(const float* p, int64_t size) {  // a sum is finite iff no NaN/inf (or overflow: diverged)
  float part[16] = {};
  int64_t k = 0;
  for (; k + 16 <= size; k += 16)
    for (int j = 0; j < 16; ++j) part[j] += p[k + j];
  float s = 0.0f;
  for (; k < size; ++k) s += p[k];
  for (int j = 0; j < 16; ++j) s += part[j];
  return std::isfinite(s);
}

inline float ce_loss(float z, float t) {  // softplus(z) - t z, stable
  return std::fmax(z, 0.0f) - t * z + std::log1p(std::exp(-std::fabs(z)));
}

}  // namespace

extern "C" {

int sgdb_fcn_dims(int32_t* out, int cap) {
  for (int l = 0; l <= L && l < cap; ++l) out[l] = kDims[l];
  return L + 1;
}

int sgdb_fcn_bmax() { return B_REAL; }

// Networks m in [m_begin, m_end) with active[m] != 0 (active may be null: all) train one epoch: steps s = 0 ..
// steps-1 on rows perm[m, s*batch : (s+1)*batch] (perm int64 [M, perm_stride]); steps == 0 trains nothing (a check
// alone). Per network statistics (indexed by m; untouched for inactive networks):
//   run_loss, run_correct: minibatch-mean loss summed over the epoch's steps (CE only with check bit 2, else 0) and
//     correctly labelled minibatch rows, from the forward pass before each update (what Keras reports);
//   with check bit 1, on all n rows of X in order after the epoch: loss_out (mean loss with check bit 4, else
//     NaN: a log per row for CE, so asked only for networks that finish), correct_out (rows with
//     (logit > threshold) == label), min_pos / max_neg (least logit of a label-1 row, +inf if none / greatest of a
//     label-0 row, -inf if none), finite (all parameters and all these logits finite).
// Returns 0; -1 if a work buffer could not be allocated; -2 if batch is outside 1 .. BMAX.
int sgdb_fcn_sgd_epoch(int64_t m_begin, int64_t m_end, const uint8_t* active, float* const* W_stack,
                       float* const* b_stack, const float* X, int64_t n, const float* target, const uint8_t* label,
                       const int64_t* perm, int64_t perm_stride, int64_t batch, int64_t steps, float lr, int loss,
                       float threshold, int check, float* run_loss, int32_t* run_correct, float* loss_out,
                       int32_t* correct_out, float* min_pos, float* max_neg, uint8_t* finite) {
  if (batch < 1 || batch > B_REAL) return -2;
  Work w;
  size_t floats = 0;
  for (int l = 0; l <= L; ++l) floats += size_t(kDims[l]) * B;      // aT
  for (int l = 0; l < L; ++l) floats += size_t(stride_of(l)) * B;   // a_bm
  for (int l = 0; l < L; ++l)                                       // padded weight copies
    if (stride_of(l) != kDims[l]) floats += size_t(kDims[l + 1]) * stride_of(l);
  floats += 2 * size_t(W_MAX) * B;                                  // dT
  float* buf = static_cast<float*>(std::aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64));
  if (!buf) return -1;
  std::memset(buf, 0, floats * sizeof(float));
  float* p = buf;
  for (int l = 0; l <= L; ++l) { w.aT[l] = p; p += kDims[l] * B; }
  for (int l = 0; l < L; ++l) { w.a_bm[l] = p; p += stride_of(l) * B; }
  float* padded[L];
  for (int l = 0; l < L; ++l) {
    padded[l] = nullptr;
    if (stride_of(l) != kDims[l]) { padded[l] = p; p += kDims[l + 1] * stride_of(l); }
  }
  w.dT[0] = p; p += W_MAX * B;
  w.dT[1] = p;

  const float neg_lr = -lr;
  const bool running_loss = (check & 2) != 0;
  const bool check_loss = (check & 4) != 0;
  int64_t sizes_w[L], sizes_b[L];
  for (int l = 0; l < L; ++l) { sizes_w[l] = int64_t(kDims[l + 1]) * kDims[l]; sizes_b[l] = kDims[l + 1]; }
  int64_t idx_all[B_REAL];

  for (int64_t m = m_begin; m < m_end; ++m) {
    if (active && !active[m]) continue;
    float* Wn[L];
    float* bn[L];
    for (int l = 0; l < L; ++l) {
      bn[l] = b_stack[l] + m * sizes_b[l];
      Wn[l] = W_stack[l] + m * sizes_w[l];
      if (padded[l]) {  // work on a zero-padded copy (pads stay zero: their inputs are zero)
        for (int o = 0; o < kDims[l + 1]; ++o)
          std::memcpy(padded[l] + o * stride_of(l), Wn[l] + o * kDims[l], sizeof(float) * kDims[l]);
        Wn[l] = padded[l];
      }
    }
    const int64_t* order = perm ? perm + m * perm_stride : nullptr;
    double rl = 0.0;
    int32_t rc = 0;
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t start = s * batch;
      const int bs = int(n - start < batch ? n - start : batch);
      gather(X, order + start, bs, w, true);
      forward_all<0>(Wn, bn, w);
      to_batch_major<1>(w, bs);
      const float* z = w.aT[L];
      double lsum = 0.0;
      for (int b = 0; b < bs; ++b) {
        const int64_t r = order[start + b];
        const float t = target[r];
        float gz;
        if (loss == 0) {
          gz = (1.0f / (1.0f + std::exp(-z[b])) - t) / float(bs);
          if (running_loss) lsum += ce_loss(z[b], t);
        } else {
          gz = 2.0f * (z[b] - t) / float(bs);
          lsum += double(z[b] - t) * double(z[b] - t);
        }
        w.dT[0][b] = gz;
        rc += ((z[b] > threshold) == (label[r] != 0));
      }
      for (int b = bs; b < B; ++b) w.dT[0][b] = 0.0f;
      rl += lsum / bs;
      backward_all<L>(Wn, bn, w, bs, neg_lr, 0);
    }
    if (run_loss) run_loss[m] = float(rl);
    if (run_correct) run_correct[m] = rc;
    for (int l = 0; l < L; ++l)
      if (padded[l]) {
        float* dst = W_stack[l] + m * sizes_w[l];
        for (int o = 0; o < kDims[l + 1]; ++o)
          std::memcpy(dst + o * kDims[l], padded[l] + o * stride_of(l), sizeof(float) * kDims[l]);
      }
    if (!(check & 1)) continue;

    bool ok = true;
    for (int l = 0; l < L && ok; ++l)
      ok = all_finite(W_stack[l] + m * sizes_w[l], sizes_w[l]) && all_finite(bn[l], sizes_b[l]);
    double lsum = 0.0;
    int32_t correct = 0;
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t start = 0; start < n; start += B_REAL) {
      const int bs = int(n - start < B_REAL ? n - start : B_REAL);
      for (int b = 0; b < bs; ++b) idx_all[b] = start + b;
      gather(X, idx_all, bs, w, false);
      forward_all<0>(Wn, bn, w);
      const float* z = w.aT[L];
      for (int b = 0; b < bs; ++b) {
        const int64_t r = start + b;
        const float t = target[r];
        const float zb = z[b];
        ok = ok && std::isfinite(zb);
        if (check_loss) lsum += loss == 0 ? double(ce_loss(zb, t)) : double(zb - t) * double(zb - t);
        const bool pos = label[r] != 0;
        correct += ((zb > threshold) == pos);
        if (pos) lo = std::fmin(lo, zb); else hi = std::fmax(hi, zb);
      }
    }
    loss_out[m] = check_loss ? float(lsum / double(n)) : NAN;
    correct_out[m] = correct;
    min_pos[m] = lo;
    max_neg[m] = hi;
    finite[m] = ok;
  }
  std::free(buf);
  return 0;
}

}  // extern "C"
