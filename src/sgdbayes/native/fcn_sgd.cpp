// Plain SGD (no momentum) for stacks of small fully connected ReLU networks d -> h_1 -> ... -> h_L -> 1 (one logit),
// each network on its own minibatch order (sgdbayes.ensembles.fused and train_ensemble's native path). Built by
// sgdbayes.native with the sizes as compile-time constants:  -DDIMS=7,40,40,1  -DBMAX=8 (the minibatch size).
//
// Parameters are the torch stacks of sgdbayes.ensembles.FCN, used in place: layer l has W_l [M, out, in] and
// b_l [M, out] (contiguous float32).
//
// Layout. A minibatch of B rows is padded to BP (a power of two >= 4) rows. The vector unit is LN = max(16, BP) floats
// (one AVX-512 register for BP <= 16): for BP < 16, NP = 16 / BP networks share it, lane b * NP + n holding row b of
// the network in slot n. Each slot keeps its network's weights interleaved for the whole time it trains ("augmented"
// rows: W_l[o][i] of slot n at WA_l[o][i][n], the bias in column i = in_l, zero padding after), so the NP weights a
// lane group needs are NP adjacent floats, broadcast across the register by one load. Every operation is per lane,
// so a network's arithmetic does not depend on its slot, on the other slots or on the thread: results are the same
// whichever networks share a register.
//
// Arithmetic per step (minibatch of bs <= B rows, as FCN.sgd_step_ and autograd + torch.optim.SGD):
//   forward   a_0 = x, z_l = W_l a_{l-1} + b_l (the bias as the weight of a constant-1 input), a_l = relu(z_l)
//             (hidden), logit z_L;
//   loss grad g = dLoss/dz_L of the minibatch mean: CE (sigmoid(z) - y)/bs, MSE 2(z - t)/bs; padded rows 0;
//   backward  delta_L = g, delta_{l-1} = (W_l^T delta_l) * [a_{l-1} > 0], computed before W_l changes;
//   update    [W_l b_l] -= lr * delta_l [a_{l-1}; 1]^T.
// Activations and deltas are kept feature-major (vector per unit, lanes = rows x slots), so forward and backward
// products vectorise over the lanes; the weight update vectorises over the augmented columns of a batch-major copy of
// the layer's input (built with -ffp-contract=fast: multiply-adds become FMAs). NaN propagates, so a diverged network
// shows non-finite statistics.
//
// Two entry points: sgdb_fcn_sgd_epoch (one epoch of given visiting orders for the active networks of a range, then an
// optional check on all of S) and sgdb_fcn_train (networks trained to the end of their runs under a stop rule, each
// slot refilled with the next network when its run ends; visiting orders generated here, equal to
// sgdbayes.ensembles.epoch_permutations).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

#ifndef DIMS
#error "define DIMS, e.g. -DDIMS=7,40,40,1"
#endif
#ifndef BMAX
#error "define BMAX (the minibatch size)"
#endif

namespace {

constexpr int kDims[] = {DIMS};
constexpr int L = int(sizeof(kDims) / sizeof(int)) - 1;  // weight layers
static_assert(L >= 1 && kDims[L] == 1, "the last layer must have one output (the logit)");
constexpr int B_REAL = BMAX;
constexpr int pow2_at_least(int b) { int p = 4; while (p < b) p *= 2; return p; }
constexpr int BP = pow2_at_least(B_REAL);    // padded rows per network
constexpr int NP = BP >= 16 ? 1 : 16 / BP;   // networks sharing a vector
constexpr int LN = NP * BP;                  // lanes of a vector
constexpr int IN(int l) { return kDims[l]; }
constexpr int OUT(int l) { return kDims[l + 1]; }
// augmented columns of layer l (inputs, the bias column, zero padding): ROW(l) = SA(l) * NP floats, a multiple of 8
constexpr int SA(int l) { return ((IN(l) + 1) * NP + 7) / 8 * 8 / NP; }
constexpr int ROW(int l) { return SA(l) * NP; }
constexpr int max_width() {
  int w = 0;
  for (int l = 0; l <= L; ++l) w = kDims[l] > w ? kDims[l] : w;
  return w;
}
constexpr int W_MAX = max_width();
constexpr int64_t NEVER = INT64_C(1) << 62;
constexpr double LOGIT_SAFE_BOUND = 1e30;

typedef float vl __attribute__((vector_size(LN * sizeof(float)), aligned(64)));
template <int N>
struct VF {
  typedef float type __attribute__((vector_size(N * sizeof(float)), aligned(sizeof(float))));
};

// The NP floats at p repeated across a vector of N floats (a broadcast load; no arithmetic touches the bits).
template <int N>
inline typename VF<N>::type splat(const float* p) {
  typedef typename VF<N>::type V;
#if defined(__AVX512F__)
  if constexpr (N == 16 && NP == 2) {
    double d;
    std::memcpy(&d, p, sizeof d);
    return (V)_mm512_castpd_ps(_mm512_set1_pd(d));
  }
  if constexpr (N == 16 && NP == 4) return (V)_mm512_broadcast_f32x4(_mm_loadu_ps(p));
#endif
#if defined(__AVX__)
  if constexpr (N == 8 && NP == 2) {
    double d;
    std::memcpy(&d, p, sizeof d);
    return (V)_mm256_castpd_ps(_mm256_set1_pd(d));
  }
  if constexpr (N == 8 && NP == 4) return (V)_mm256_broadcast_ps(reinterpret_cast<const __m128*>(p));
#endif
  V v;
  for (int k = 0; k < N; ++k) v[k] = p[k % NP];
  return v;
}

typedef int32_t vi __attribute__((vector_size(LN * sizeof(int32_t)), aligned(64)));
inline vl vzero() { return vl{}; }
inline vl vsplat(float c) { return vzero() + c; }

// exp on every lane (Cephes' expf: range reduction by ln 2 in two parts, degree-6 polynomial; ~1 ulp), for the
// sigmoid of the loss gradient. Arguments are clamped to [-87, 87] (the sigmoid saturates long before: 1 + e^-87
// rounds to 1); NaN stays NaN.
inline vl vexp(vl x) {
  x = x > 87.0f ? vsplat(87.0f) : x;
  x = x < -87.0f ? vsplat(-87.0f) : x;
  const vl t = x * 1.44269504088896341f + (x < 0.0f ? vsplat(-0.5f) : vsplat(0.5f));
  const vi ni = __builtin_convertvector(t, vi);  // round half away from zero
  const vl n = __builtin_convertvector(ni, vl);
  vl r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const vl r2 = r * r;
  vl p = 1.9875691500e-4f * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  return (vl)((vi)p + (ni << 23));  // p * 2^n
}

// The products below run on 16-lane chunks of the vectors (one AVX-512 register each; NC chunks per vector) with
// 8 output accumulators per pass, so wide minibatches (LN = 32, 128) never keep accumulators in memory.
constexpr int NC = LN / 16;
constexpr int RC = 8;
typedef float v16 __attribute__((vector_size(64), aligned(64)));
inline v16 wmul16(const float* p, v16 x) {
  if constexpr (NP == 1) {
    return *p * x;
  } else {
    return (v16)splat<16>(p) * x;
  }
}
inline v16 relu16(v16 z) { return z < 0.0f ? v16{} : z; }  // NaN stays NaN

// zT[o] = sum_{i <= in} WA[o][i] * aT[i] (aT[in] = 1: the bias) for o < OUT; hidden layers apply relu
template <int l, bool HIDDEN>
inline void forward_layer(const float* __restrict W, const vl* __restrict a, vl* __restrict z) {
  constexpr int I1 = IN(l) + 1, O = OUT(l), R = ROW(l);
  constexpr int OEND = O - O % RC;
  const v16* a16 = reinterpret_cast<const v16*>(a);
  v16* z16 = reinterpret_cast<v16*>(z);
  for (int c = 0; c < NC; ++c) {
    for (int o = 0; o < OEND; o += RC) {
      v16 acc[RC];
      for (int r = 0; r < RC; ++r) acc[r] = v16{};
      for (int i = 0; i < I1; ++i) {
        const v16 x = a16[i * NC + c];
        for (int r = 0; r < RC; ++r) acc[r] += wmul16(W + (o + r) * R + i * NP, x);
      }
      for (int r = 0; r < RC; ++r) z16[(o + r) * NC + c] = HIDDEN ? relu16(acc[r]) : acc[r];
    }
    for (int o = OEND; o < O; ++o) {  // a few outputs (the logit): four partial sums, for latency
      v16 acc[4] = {};
      int i = 0;
      for (; i + 4 <= I1; i += 4)
        for (int k = 0; k < 4; ++k) acc[k] += wmul16(W + o * R + (i + k) * NP, a16[(i + k) * NC + c]);
      for (; i < I1; ++i) acc[0] += wmul16(W + o * R + i * NP, a16[i * NC + c]);
      const v16 sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
      z16[o * NC + c] = HIDDEN ? relu16(sum) : sum;
    }
  }
}

// dinT[i] = (sum_o WA[o][i] * dT[o]) * [aT[i] > 0] for i < IN(l)
template <int l>
inline void backward_data(const float* __restrict W, const vl* __restrict d, const vl* __restrict a,
                          vl* __restrict din) {
  constexpr int I = IN(l), O = OUT(l), R = ROW(l);
  constexpr int IEND = I - I % RC;
  const v16* d16 = reinterpret_cast<const v16*>(d);
  const v16* a16 = reinterpret_cast<const v16*>(a);
  v16* din16 = reinterpret_cast<v16*>(din);
  for (int c = 0; c < NC; ++c) {
    for (int i = 0; i < IEND; i += RC) {
      v16 acc[RC];
      for (int r = 0; r < RC; ++r) acc[r] = v16{};
      for (int o = 0; o < O; ++o) {
        const v16 x = d16[o * NC + c];
        for (int r = 0; r < RC; ++r) acc[r] += wmul16(W + o * R + (i + r) * NP, x);
      }
      for (int r = 0; r < RC; ++r)
        din16[(i + r) * NC + c] = a16[(i + r) * NC + c] > 0.0f ? acc[r] : v16{};
    }
    for (int i = IEND; i < I; ++i) {
      v16 acc = v16{};
      for (int o = 0; o < O; ++o) acc += wmul16(W + o * R + i * NP, d16[o * NC + c]);
      din16[i * NC + c] = a16[i * NC + c] > 0.0f ? acc : v16{};
    }
  }
}

// WA[o][C0 : C0 + K*N] += neg_lr * sum_{b<bs} dT[o][b*NP : (b+1)*NP] * abm[b][C0 : C0 + K*N] for o in [o0, o0 + R):
// R x K accumulators of N floats stay in registers over the minibatch rows, then one pass updates WA.
template <int ROWF, int R, int C0, int N, int K>
inline void update_tile(float* __restrict W, const float* __restrict dT, const float* __restrict abm, int bs,
                        float neg_lr, int o0) {
  typedef typename VF<N>::type v;
  v acc[R][K];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < K; ++k) acc[r][k] = v{};
  for (int b = 0; b < bs; ++b) {
    const v* x = reinterpret_cast<const v*>(abm + b * ROWF + C0);
    v xs[K];
    for (int k = 0; k < K; ++k) xs[k] = x[k];
    for (int r = 0; r < R; ++r) {
      const float* dp = dT + (o0 + r) * LN + b * NP;
      if constexpr (NP == 1) {
        const float d = *dp;
        for (int k = 0; k < K; ++k) acc[r][k] += d * xs[k];
      } else {
        const v d = splat<N>(dp);
        for (int k = 0; k < K; ++k) acc[r][k] += d * xs[k];
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    v* w = reinterpret_cast<v*>(W + (o0 + r) * ROWF + C0);
    for (int k = 0; k < K; ++k) w[k] = w[k] + neg_lr * acc[r][k];
  }
}

// all columns of rows [o0, o0 + R), in tiles of up to 3 x 16 floats, then 8 (ROWF is a multiple of 8)
template <int ROWF, int R, int C0>
inline void update_cols(float* __restrict W, const float* __restrict dT, const float* __restrict abm, int bs,
                        float neg_lr, int o0) {
  constexpr int REM = ROWF - C0;
  static_assert(REM % 8 == 0, "rows are whole multiples of 8 floats");
  if constexpr (REM >= 48) {
    update_tile<ROWF, R, C0, 16, 3>(W, dT, abm, bs, neg_lr, o0);
    update_cols<ROWF, R, C0 + 48>(W, dT, abm, bs, neg_lr, o0);
  } else if constexpr (REM >= 16) {
    update_tile<ROWF, R, C0, 16, REM / 16>(W, dT, abm, bs, neg_lr, o0);
    update_cols<ROWF, R, C0 + 16 * (REM / 16)>(W, dT, abm, bs, neg_lr, o0);
  } else if constexpr (REM >= 8) {
    update_tile<ROWF, R, C0, 8, 1>(W, dT, abm, bs, neg_lr, o0);
  }
}

template <int l>
inline void update_layer(float* __restrict W, const vl* __restrict dT, const float* __restrict abm, int bs,
                         float neg_lr) {
  constexpr int O = OUT(l), RF = ROW(l);
  constexpr int R = 4;
  constexpr int OEND = O - O % R;
  const float* d = reinterpret_cast<const float*>(dT);
  for (int o = 0; o < OEND; o += R) update_cols<RF, R, 0>(W, d, abm, bs, neg_lr, o);
  for (int o = OEND; o < O; ++o) update_cols<RF, 1, 0>(W, d, abm, bs, neg_lr, o);
}

// batch-major copy of a layer's input: abm[b][i*NP + n] = aT[i][b*NP + n], for b < bs and i < width
template <int WIDTH, int RF>
inline void to_batch_major(const vl* __restrict aT, float* __restrict abm, int bs) {
  int i0 = 0;
#if defined(__AVX512F__)
  if constexpr (NP == 2 && LN == 16) {
    // aT[i] is 8 pairs (rows b = 0..7): transpose 8 x 8 blocks of pairs (as doubles), all 8 rows (rows >= bs unused)
    for (; i0 + 8 <= WIDTH; i0 += 8) {
      __m512d r[8], t[8];
      for (int j = 0; j < 8; ++j) r[j] = _mm512_castps_pd(reinterpret_cast<const __m512&>(aT[i0 + j]));
      for (int j = 0; j < 8; j += 2) {
        t[j] = _mm512_unpacklo_pd(r[j], r[j + 1]);      // (i0+j, i0+j+1) x rows 0,2,4,6
        t[j + 1] = _mm512_unpackhi_pd(r[j], r[j + 1]);  // ... rows 1,3,5,7
      }
      for (int j = 0; j < 8; j += 4)
        for (int h = 0; h < 2; ++h) {
          r[j + h] = _mm512_shuffle_f64x2(t[j + h], t[j + h + 2], 0x88);      // 128-bit lanes 0,2 | 0,2
          r[j + h + 2] = _mm512_shuffle_f64x2(t[j + h], t[j + h + 2], 0xDD);  // 1,3 | 1,3
        }
      for (int h = 0; h < 4; ++h) {
        t[h] = _mm512_shuffle_f64x2(r[h], r[h + 4], 0x88);
        t[h + 4] = _mm512_shuffle_f64x2(r[h], r[h + 4], 0xDD);
      }
      // t[b] now holds row b for i0 .. i0+7
      for (int b = 0; b < 8; ++b) _mm512_storeu_pd(reinterpret_cast<double*>(abm + b * RF + i0 * 2), t[b]);
    }
  }
#endif
  if (i0 >= WIDTH) return;
  for (int b = 0; b < bs; ++b) {
    float* dst = abm + b * RF;
    for (int i = i0; i < WIDTH; ++i) {
      const float* src = reinterpret_cast<const float*>(aT + i) + b * NP;
      for (int n = 0; n < NP; ++n) dst[i * NP + n] = src[n];
    }
  }
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
  return (z > 0.0f ? z : 0.0f) - t * z + std::log1p(std::exp(-std::fabs(z)));
}

inline uint32_t hash32(uint32_t x) {  // Wellons' lowbias32 (sgdbayes.ensembles.train._hash32)
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

// sgdbayes.ensembles.epoch_permutations for one network: the stable argsort of n hashed keys
void visiting_order(uint32_t k0, uint32_t k1, int64_t epoch, int64_t n, int64_t* out, uint64_t* tmp) {
  constexpr uint32_t GOLDEN = 0x9E3779B9u;
  const uint32_t e = uint32_t(uint64_t(epoch) & 0xFFFFFFFFu);
  const uint32_t base = hash32(k0 ^ hash32((e * GOLDEN) ^ k1));
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t h = hash32(hash32(base + uint32_t(j) * GOLDEN) ^ k1);
    tmp[j] = (uint64_t(h) << 32) | uint64_t(j);  // distinct keys: (hash, position)
  }
  if (n <= 256) {  // small: each key's rank by counting the smaller keys (vectorised), no branches
    for (int64_t j = 0; j < n; ++j) {
      const uint64_t key = tmp[j];
      int64_t rank = 0;
      for (int64_t k = 0; k < n; ++k) rank += tmp[k] < key;
      out[rank] = j;
    }
    return;
  }
  std::sort(tmp, tmp + n);
  for (int64_t j = 0; j < n; ++j) out[j] = int64_t(tmp[j] & 0xFFFFFFFFu);
}

// Per-slot result of a check on S.
struct Check {
  int mode;         // 0 none, 1 finiteness only, 2 screen (stop at a misclassified row when safe), 3 all rows
  bool params_ok;   // parameters finite
  bool safe;        // parameters finite and the logit bound < LOGIT_SAFE_BOUND: logits on S are finite
  bool logits_ok;   // every logit looked at finite
  bool done;        // nothing more to look at
  int64_t rows;     // rows looked at
  int64_t correct;  // (logit > threshold) == label
  int64_t sign_correct;  // (logit > 0) == label
  double loss;      // sum of the per-row losses
  float min_pos, max_neg;
  bool finite() const { return params_ok && logits_ok && (safe || done_all); }
  bool done_all;    // every row of S looked at
};

struct Inputs {
  const float* X;
  const float* XT;  // X transposed, [d][n] (or null): one network per vector gathers its minibatch from it
  int64_t n;
  const float* target;
  const uint8_t* label;
  float x_max;
};

#if defined(__AVX512F__)
// 16 x 16 floats: r[j] = row j in, r[c] = column c out (unpack, 4-lane shuffle, two 128-bit lane shuffles)
inline void transpose16(__m512* r) {
  __m512 t[16], u[16];
  for (int j = 0; j < 16; j += 2) {
    t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
    t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
  }
  for (int g = 0; g < 16; g += 4) {
    u[g] = _mm512_shuffle_ps(t[g], t[g + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  // u[4g + c]: rows 4g..4g+3, 128-bit lane q holding column 4q + c
  for (int h = 0; h < 2; ++h)
    for (int c = 0; c < 4; ++c) {
      t[8 * h + c] = _mm512_shuffle_f32x4(u[8 * h + c], u[8 * h + 4 + c], 0x88);      // columns c, c + 8
      t[8 * h + 4 + c] = _mm512_shuffle_f32x4(u[8 * h + c], u[8 * h + 4 + c], 0xDD);  // columns c + 4, c + 12
    }
  for (int c = 0; c < 8; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
    r[c + 8] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);
  }
}
#endif

class Engine {
 public:
  float* WA[L];
  vl* aT[L + 1];     // aT[l]: IN(l) + 1 vectors (the last all ones) for l < L; aT[L]: the logits
  float* abm[L];     // batch-major [BP][ROW(l)]: inputs of layer l, the bias column 1, zero padding
  vl* dT[2];
  int64_t* order[NP];
  uint64_t* sort_tmp;
  int64_t slot[NP];  // network (row of the stacks) in each slot, -1 when empty
  void* mem = nullptr;
  float* const* Wst;
  float* const* bst;

  bool init(int64_t n, float* const* W_stack, float* const* b_stack) {
    Wst = W_stack;
    bst = b_stack;
    size_t bytes = 0;
    auto add = [&](size_t b) { bytes += (b + 63) / 64 * 64; };
    for (int l = 0; l < L; ++l) add(sizeof(float) * OUT(l) * ROW(l));
    for (int l = 0; l < L; ++l) add(sizeof(vl) * (IN(l) + 1));
    add(sizeof(vl));
    for (int l = 0; l < L; ++l) add(sizeof(float) * BP * ROW(l));
    add(2 * sizeof(vl) * W_MAX);
    for (int k = 0; k < NP; ++k) add(sizeof(int64_t) * (n > 0 ? n : 1));
    add(sizeof(uint64_t) * (n > 0 ? n : 1));
    mem = std::aligned_alloc(64, bytes);
    if (!mem) return false;
    std::memset(mem, 0, bytes);
    char* p = static_cast<char*>(mem);
    auto take = [&](size_t b) { char* q = p; p += (b + 63) / 64 * 64; return q; };
    for (int l = 0; l < L; ++l) WA[l] = reinterpret_cast<float*>(take(sizeof(float) * OUT(l) * ROW(l)));
    for (int l = 0; l < L; ++l) aT[l] = reinterpret_cast<vl*>(take(sizeof(vl) * (IN(l) + 1)));
    aT[L] = reinterpret_cast<vl*>(take(sizeof(vl)));
    for (int l = 0; l < L; ++l) abm[l] = reinterpret_cast<float*>(take(sizeof(float) * BP * ROW(l)));
    vl* d = reinterpret_cast<vl*>(take(2 * sizeof(vl) * W_MAX));
    dT[0] = d;
    dT[1] = d + W_MAX;
    for (int k = 0; k < NP; ++k) order[k] = reinterpret_cast<int64_t*>(take(sizeof(int64_t) * (n > 0 ? n : 1)));
    sort_tmp = reinterpret_cast<uint64_t*>(take(sizeof(uint64_t) * (n > 0 ? n : 1)));
    for (int l = 0; l < L; ++l) {
      float* ones = reinterpret_cast<float*>(aT[l] + IN(l));
      for (int j = 0; j < LN; ++j) ones[j] = 1.0f;
      for (int b = 0; b < BP; ++b)
        for (int k = 0; k < NP; ++k) abm[l][b * ROW(l) + IN(l) * NP + k] = 1.0f;
    }
    for (int k = 0; k < NP; ++k) slot[k] = -1;
    return true;
  }
  ~Engine() { std::free(mem); }

  // network m of the stacks into slot k (m < 0: empty the slot)
  void load(int k, int64_t m) {
    slot[k] = m;
    for (int l = 0; l < L; ++l) {
      const int I = IN(l), O = OUT(l), RF = ROW(l);
      const float* W = m >= 0 ? Wst[l] + m * int64_t(O) * I : nullptr;
      const float* b = m >= 0 ? bst[l] + m * int64_t(O) : nullptr;
      for (int o = 0; o < O; ++o) {
        float* row = WA[l] + o * RF;
        for (int i = 0; i < I; ++i) row[i * NP + k] = W ? W[o * I + i] : 0.0f;
        row[I * NP + k] = b ? b[o] : 0.0f;
      }
    }
  }

  void store(int k) const {
    const int64_t m = slot[k];
    if (m < 0) return;
    for (int l = 0; l < L; ++l) {
      const int I = IN(l), O = OUT(l), RF = ROW(l);
      float* W = Wst[l] + m * int64_t(O) * I;
      float* b = bst[l] + m * int64_t(O);
      for (int o = 0; o < O; ++o) {
        const float* row = WA[l] + o * RF;
        for (int i = 0; i < I; ++i) W[o * I + i] = row[i * NP + k];
        b[o] = row[I * NP + k];
      }
    }
  }

  bool any_slot() const {
    for (int k = 0; k < NP; ++k)
      if (slot[k] >= 0) return true;
    return false;
  }

  // rows rows_of[k][0 .. bs) of X into the lanes of slot k (identity rows when rows_of[k] is null); empty slots and
  // padded rows get zeros
  void gather(const Inputs& in, const int64_t* const* rows_of, int64_t start, int bs, bool batch_major) {
    constexpr int D = IN(0);
    float* xT = reinterpret_cast<float*>(aT[0]);
    if (bs < BP || !all_slots_full()) std::memset(xT, 0, sizeof(vl) * D);
    if constexpr (NP == 1) {
      // one network, a minibatch of up to LN rows: each input unit's row of the vector comes from the transposed
      // training set, contiguous for the check (rows in order), gathered for a step
      if (slot[0] >= 0 && in.XT) {
        const int64_t* rows = rows_of[0];
        if (!rows) {
          for (int i = 0; i < D; ++i) std::memcpy(xT + i * LN, in.XT + i * in.n + start, sizeof(float) * bs);
        } else {
          int i0 = 0;
#if defined(__AVX512F__)
          // whole 16 x 16 blocks (16 rows of the minibatch x 16 inputs), transposed in registers; the rows also
          // land in the batch-major copy for the update
          for (; i0 + 16 <= D; i0 += 16)
            for (int c = 0; c * 16 < bs; ++c) {
              const int cnt = bs - c * 16 < 16 ? bs - c * 16 : 16;
              __m512 r[16];
              for (int j = 0; j < 16; ++j) {
                r[j] = j < cnt ? _mm512_loadu_ps(in.X + rows[start + c * 16 + j] * D + i0) : _mm512_setzero_ps();
                if (batch_major && j < cnt) _mm512_storeu_ps(abm[0] + (c * 16 + j) * ROW(0) + i0, r[j]);
              }
              transpose16(r);
              for (int j = 0; j < 16; ++j) _mm512_store_ps(xT + (i0 + j) * LN + c * 16, r[j]);
            }
#endif
          for (int b = 0; b < bs; ++b) {
            const int64_t r = rows[start + b];
            for (int i = i0; i < D; ++i) xT[i * LN + b] = in.X[r * D + i];
            if (batch_major)
              for (int i = i0; i < D; ++i) abm[0][b * ROW(0) + i] = in.X[r * D + i];
          }
          return;
        }
        if (batch_major)
          for (int b = 0; b < bs; ++b)
            std::memcpy(abm[0] + b * ROW(0), in.X + (start + b) * D, sizeof(float) * D);
        return;
      }
    }
    for (int k = 0; k < NP; ++k) {
      if (slot[k] < 0) {
        if (batch_major)
          for (int b = 0; b < bs; ++b)
            for (int i = 0; i < D; ++i) abm[0][b * ROW(0) + i * NP + k] = 0.0f;
        continue;
      }
      for (int b = 0; b < bs; ++b) {
        const int64_t r = rows_of[k] ? rows_of[k][start + b] : start + b;
        const float* row = in.X + r * D;
        for (int i = 0; i < D; ++i) xT[i * LN + b * NP + k] = row[i];
        if (batch_major)
          for (int i = 0; i < D; ++i) abm[0][b * ROW(0) + i * NP + k] = row[i];
      }
    }
  }

  bool all_slots_full() const {
    for (int k = 0; k < NP; ++k)
      if (slot[k] < 0) return false;
    return true;
  }

  template <int l>
  void forward_all() {
    if constexpr (l < L) {
      forward_layer<l, (l + 1 < L)>(WA[l], aT[l], aT[l + 1]);
      forward_all<l + 1>();
    }
  }

  template <int l>
  void batch_major_all(int bs) {
    if constexpr (l < L) {
      to_batch_major<IN(l), ROW(l)>(aT[l], abm[l], bs);
      batch_major_all<l + 1>(bs);
    }
  }

  // backward + update of weight layers l, l-1, ..., 0; the delta of layer l's output in dT[cur]
  template <int l>
  void backward_all(int bs, float neg_lr, int cur) {
    if constexpr (l >= 0) {
      if constexpr (l >= 1) backward_data<l>(WA[l], dT[cur], aT[l], dT[1 - cur]);
      update_layer<l>(WA[l], dT[cur], abm[l], bs, neg_lr);
      backward_all<l - 1>(bs, neg_lr, 1 - cur);
    }
  }

  // One SGD step of every occupied slot on its rows order[k][start .. start + bs). Adds each slot's minibatch-mean
  // loss (CE only when want_ce_loss) and correctly labelled rows (logit > threshold) to run_loss / run_correct.
  void step(const Inputs& in, int64_t start, int bs, float neg_lr, int loss, float threshold, bool want_ce_loss,
            double* run_loss, int64_t* run_correct) {
    gather(in, order, start, bs, true);
    forward_all<0>();
    batch_major_all<1>(bs);
    const float* z = reinterpret_cast<const float*>(aT[L]);
    const float inv_bs = 1.0f / float(bs);
    // the loss gradient on all lanes at once: targets per lane, zero on padded rows and empty slots
    alignas(64) float tl[LN];
    alignas(64) int32_t on[LN];
    for (int j = 0; j < LN; ++j) { tl[j] = 0.0f; on[j] = 0; }
    for (int k = 0; k < NP; ++k) {
      if (slot[k] < 0) continue;
      for (int b = 0; b < bs; ++b) {
        tl[b * NP + k] = in.target[order[k][start + b]];
        on[b * NP + k] = -1;
      }
    }
    const vl zv = aT[L][0], tv = *reinterpret_cast<const vl*>(tl);
    const vi onv = *reinterpret_cast<const vi*>(on);
    const vl gv = loss == 0 ? (1.0f / (1.0f + vexp(-zv)) - tv) * inv_bs : 2.0f * (zv - tv) * inv_bs;
    dT[0][0] = onv != 0 ? gv : vzero();
    if (run_loss || run_correct) {  // Keras' running figures (sgd_epoch only)
      for (int k = 0; k < NP; ++k) {
        if (slot[k] < 0) continue;
        double lsum = 0.0;
        int64_t rc = 0;
        for (int b = 0; b < bs; ++b) {
          const int64_t r = order[k][start + b];
          const float t = in.target[r];
          const float zb = z[b * NP + k];
          if (loss == 0) {
            if (want_ce_loss) lsum += ce_loss(zb, t);
          } else {
            lsum += double(zb - t) * double(zb - t);
          }
          rc += ((zb > threshold) == (in.label[r] != 0));
        }
        if (run_loss) run_loss[k] += lsum / bs;
        if (run_correct) run_correct[k] += rc;
      }
    }
    backward_all<L - 1>(bs, neg_lr, 0);
  }

  // For every slot: its parameters finite (params_ok) and the bound on its logits over inputs with |x| <= x_max
  // below LOGIT_SAFE_BOUND (safe). Layer l maps inputs bounded by a to outputs bounded by in_l max|W_l| a + max|b_l|
  // (ReLU and zero padding do not increase magnitudes), as train._logit_bound. Partial sums and maxima run 16 lanes
  // wide over the interleaved rows (position p of a row belongs to slot p % NP).
  void bounds(float x_max, Check* out) const {
    bool ok[NP];
    double a[NP];
    for (int k = 0; k < NP; ++k) { ok[k] = true; a[k] = x_max; }
    for (int l = 0; l < L; ++l) {
      const int I = IN(l), O = OUT(l), RF = ROW(l);
      const int WN = I * NP;  // weight floats of a row; the NP bias floats follow
      float wsum[16] = {}, wmax[16] = {}, bsum[NP] = {}, bmax[NP] = {};
      for (int o = 0; o < O; ++o) {
        const float* row = WA[l] + o * RF;
        int p = 0;
        for (; p + 16 <= WN; p += 16)
          for (int j = 0; j < 16; ++j) {
            const float w = row[p + j], aw = std::fabs(w);
            wsum[j] += w;
            wmax[j] = aw > wmax[j] ? aw : wmax[j];  // (NaN is caught by the sums)
          }
        for (int j = 0; p + j < WN; ++j) {
          const float w = row[p + j], aw = std::fabs(w);
          wsum[j] += w;
          wmax[j] = aw > wmax[j] ? aw : wmax[j];
        }
        for (int k = 0; k < NP; ++k) {
          const float b = row[WN + k], ab = std::fabs(b);
          bsum[k] += b;
          bmax[k] = ab > bmax[k] ? ab : bmax[k];
        }
      }
      for (int k = 0; k < NP; ++k) {
        float s = bsum[k], m = 0.0f;
        for (int j = k; j < 16; j += NP) {
          s += wsum[j];
          m = wmax[j] > m ? wmax[j] : m;
        }
        ok[k] = ok[k] && std::isfinite(s);
        a[k] = double(I) * double(m) * a[k] + double(bmax[k]);
      }
    }
    for (int k = 0; k < NP; ++k) {
      out[k].params_ok = ok[k];
      out[k].safe = ok[k] && a[k] < LOGIT_SAFE_BOUND;
    }
  }

  // Check the occupied slots with mode[k] > 0 on all of S (rows in order): see Check. threshold: the fit test.
  void check(const Inputs& in, const int* mode, float threshold, int loss, bool want_loss, Check* out) {
    bool pending = false;
    for (int k = 0; k < NP; ++k) {
      Check& c = out[k];
      c = Check{};
      c.mode = slot[k] >= 0 ? mode[k] : 0;
      c.logits_ok = true;
      c.min_pos = INFINITY;
      c.max_neg = -INFINITY;
    }
    bounds(in.x_max, out);
    for (int k = 0; k < NP; ++k) {
      Check& c = out[k];
      c.done = c.mode == 0 || (c.mode == 1 && c.safe);  // finiteness known without a forward pass
      pending = pending || !c.done;
    }
    int64_t start = 0;
    while (pending && start < in.n) {
      const int bs = int(in.n - start < B_REAL ? in.n - start : B_REAL);
      gather(in, nullptr_rows(), start, bs, false);
      forward_all<0>();
      const float* z = reinterpret_cast<const float*>(aT[L]);
      pending = false;
      for (int k = 0; k < NP; ++k) {
        Check& c = out[k];
        if (c.done) continue;
        for (int b = 0; b < bs; ++b) {
          const int64_t r = start + b;
          const float zb = z[b * NP + k];
          const bool pos = in.label[r] != 0;
          c.logits_ok = c.logits_ok && std::isfinite(zb);
          c.correct += ((zb > threshold) == pos);
          c.sign_correct += ((zb > 0.0f) == pos);
          if (pos) c.min_pos = zb < c.min_pos ? zb : c.min_pos; else c.max_neg = zb > c.max_neg ? zb : c.max_neg;
          if (want_loss && c.mode == 3)
            c.loss += loss == 0 ? double(ce_loss(zb, in.target[r])) : double(zb - in.target[r]) * double(zb - in.target[r]);
        }
        c.rows += bs;
        if (c.rows >= in.n) { c.done = true; c.done_all = true; }
        else if (c.mode == 2 && c.safe && c.correct < c.rows) c.done = true;  // misclassified a row: not fitted
        pending = pending || !c.done;
      }
      start += bs;
    }
    for (int k = 0; k < NP; ++k)
      if (out[k].mode > 0 && out[k].rows >= in.n) out[k].done_all = true;
  }

  // (logit > thr) of the slots with dst[k] on every row of `rows` (in order) into dst[k][row]
  void predict(const Inputs& rows, uint8_t* const* dst, float thr) {
    for (int64_t start = 0; start < rows.n; start += B_REAL) {
      const int bs = int(rows.n - start < B_REAL ? rows.n - start : B_REAL);
      gather(rows, nullptr_rows(), start, bs, false);
      forward_all<0>();
      const float* z = reinterpret_cast<const float*>(aT[L]);
      for (int k = 0; k < NP; ++k)
        if (dst[k])
          for (int b = 0; b < bs; ++b) dst[k][start + b] = z[b * NP + k] > thr;
    }
  }

 private:
  const int64_t* const* nullptr_rows() const {
    static const int64_t* const none[NP] = {};
    return none;
  }
};

struct EpochArgs {
  int64_t m_begin, m_end;
  const uint8_t* active;  // [M] or null (all)
  float* const* W_stack;
  float* const* b_stack;
  const float* X;
  const float* XT;      // X transposed [d][n], or null
  int64_t n;
  const float* target;
  const uint8_t* label;
  const int64_t* perm;  // [M, perm_stride] or null (rows in order)
  int64_t perm_stride;
  int64_t batch, steps;
  double lr;
  int64_t loss;         // 0 CE, 1 MSE
  double threshold;
  int64_t check;        // 0 none, 1 all rows, 2 screen (see sgd_epoch)
  int64_t want_check_loss, want_running_ce;
  double x_max;
  // outputs [M]
  double* run_loss;
  int64_t* run_correct;
  double* loss_out;
  int64_t* correct_out;
  float* min_pos;
  float* max_neg;
  uint8_t* finite;
  uint8_t* full;        // the check looked at every row (accuracy, margins and loss are complete)
};

struct TrainArgs {
  int64_t m_begin, m_end;  // rows of the stacks, trained in this order
  float* const* W_stack;
  float* const* b_stack;
  const float* X;
  const float* XT;         // X transposed [d][n], or null
  int64_t n;
  const float* target;
  const uint8_t* label;
  const int64_t* keys;     // [M, 2] 32-bit words (epoch_permutations' keys)
  int64_t batch;
  double lr;
  int64_t loss;
  double threshold;        // fit test: class 1 iff logit > threshold
  int64_t rule;            // 0 clean, 1 keras
  int64_t max_epochs, overtrain, wait;
  const int64_t* floors;   // [M] (keras: -1 = own first fit + wait) or null
  double x_max;
  // outputs [M]
  int64_t* status;         // 0 fitted, 1 not fitted, 2 diverged
  int64_t* first_fit;
  int64_t* epochs;
  double* accuracy;
  double* loss_out;
  uint8_t* fits_by_sign;
  int64_t* stop_floor;
  // the recorded function: (logit > label_threshold) on the n_test rows of Xe (XeT: transposed, or null), written
  // to test_labels [M, n_test] when a run ends (n_test may be 0)
  const float* Xe;
  const float* XeT;
  int64_t n_test;
  double label_threshold;
  uint8_t* test_labels;
};

}  // namespace

extern "C" {

int sgdb_fcn_dims(int32_t* out, int cap) {
  for (int l = 0; l <= L && l < cap; ++l) out[l] = kDims[l];
  return L + 1;
}

int sgdb_fcn_bmax() { return B_REAL; }
int sgdb_fcn_group() { return NP; }

// One epoch of the active networks m in [m_begin, m_end) (see EpochArgs): steps s = 0 .. steps-1 on rows
// perm[m, s*batch : (s+1)*batch] (steps == 0: a check alone), then, with check, every network on all n rows of X in
// order (check 2: a network whose parameters are finite and whose logits are provably finite stops at its first
// block of rows with a misclassified row: its fit at `threshold` and its finiteness are exact, its accuracy, margins
// and loss partial, full[m] = 0). Per network (untouched for inactive ones): run_loss (sum over steps of the
// minibatch-mean loss; CE only with want_running_ce), run_correct, loss_out (sum over rows, with want_check_loss,
// else NaN), correct_out, min_pos / max_neg, finite, full.
// Returns 0; -1 if a work buffer could not be allocated; -2 for a batch outside 1 .. BMAX.
int sgdb_fcn_sgd_epoch(const EpochArgs* a) {
  if (a->batch < 1 || a->batch > B_REAL) return -2;
  Engine e;
  if (!e.init(a->n, a->W_stack, a->b_stack)) return -1;
  const Inputs in{a->X, a->XT, a->n, a->target, a->label, float(a->x_max)};
  const float neg_lr = float(-a->lr);
  int64_t m = a->m_begin;
  while (true) {
    int filled = 0;
    for (int k = 0; k < NP; ++k) {
      while (m < a->m_end && a->active && !a->active[m]) ++m;
      if (m < a->m_end) { e.load(k, m++); ++filled; } else { e.load(k, -1); }
    }
    if (!filled) break;
    for (int k = 0; k < NP; ++k) {
      if (e.slot[k] < 0) continue;
      if (a->perm) {
        std::memcpy(e.order[k], a->perm + e.slot[k] * a->perm_stride, sizeof(int64_t) * a->n);
      } else {
        for (int64_t j = 0; j < a->n; ++j) e.order[k][j] = j;
      }
    }
    double rl[NP] = {};
    int64_t rc[NP] = {};
    for (int64_t s = 0; s < a->steps; ++s) {
      const int64_t start = s * a->batch;
      const int bs = int(a->n - start < a->batch ? a->n - start : a->batch);
      e.step(in, start, bs, neg_lr, int(a->loss), float(a->threshold), a->want_running_ce != 0, rl, rc);
    }
    for (int k = 0; k < NP; ++k) {
      const int64_t mm = e.slot[k];
      if (mm < 0) continue;
      e.store(k);
      if (a->run_loss) a->run_loss[mm] = rl[k];
      if (a->run_correct) a->run_correct[mm] = rc[k];
    }
    if (a->check) {
      int mode[NP];
      for (int k = 0; k < NP; ++k) mode[k] = a->check == 2 ? 2 : 3;
      Check c[NP];
      e.check(in, mode, float(a->threshold), int(a->loss), a->want_check_loss != 0, c);
      for (int k = 0; k < NP; ++k) {
        const int64_t mm = e.slot[k];
        if (mm < 0) continue;
        a->loss_out[mm] = a->want_check_loss && c[k].done_all ? c[k].loss / double(a->n) : NAN;
        a->correct_out[mm] = c[k].correct;
        a->min_pos[mm] = c[k].min_pos;
        a->max_neg[mm] = c[k].max_neg;
        a->finite[mm] = c[k].finite();
        a->full[mm] = c[k].done_all;
      }
    }
  }
  return 0;
}

// Networks m_begin .. m_end-1 of the stacks trained to the end of their runs (TrainArgs); NP at a time, a slot taking
// the next network as soon as its run ends. Each epoch of a run visits S in the order of epoch_permutations(keys[m],
// epoch); after it, the stop rule is applied (sgdbayes.ensembles.train._train_chunk, whose semantics this follows):
//   clean: a run fits at the first epoch whose check finds S classified by `threshold`, then trains `overtrain` more
//     epochs (only its finiteness checked) and ends as fitted; without a fit it ends at max_epochs as not fitted;
//   keras: the fit is tested every epoch; the run ends at the first epoch >= min(floor, max_epochs) at which it fits
//     (floor: floors[m] when >= 0, else its own first fit + wait), or at max_epochs as not fitted;
//   both: a run whose parameters or logits on S stop being finite ends at once as diverged.
// When a run ends, its parameters are written back and it is checked on all of S once more (accuracy at
// `threshold`, mean loss, sign fit).
int sgdb_fcn_train(const TrainArgs* a) {
  if (a->batch < 1 || a->batch > B_REAL) return -2;
  Engine e;
  if (!e.init(a->n, a->W_stack, a->b_stack)) return -1;
  const Inputs in{a->X, a->XT, a->n, a->target, a->label, float(a->x_max)};
  const Inputs test{a->Xe, a->XeT, a->n_test, nullptr, nullptr, 0.0f};
  const float neg_lr = float(-a->lr);
  const float thr = float(a->threshold);
  const int64_t steps = (a->n + a->batch - 1) / a->batch;
  const bool keras = a->rule == 1;
  int64_t epoch[NP], ff[NP], floor_given[NP];
  int64_t next = a->m_begin;
  auto refill = [&](int k) {
    if (next < a->m_end) {
      e.load(k, next);
      epoch[k] = 0;
      ff[k] = -1;
      floor_given[k] = a->floors ? a->floors[next] : -1;
      ++next;
    } else {
      e.load(k, -1);
    }
  };
  for (int k = 0; k < NP; ++k) refill(k);
  while (e.any_slot()) {
    for (int k = 0; k < NP; ++k) {
      const int64_t m = e.slot[k];
      if (m < 0) continue;
      ++epoch[k];
      visiting_order(uint32_t(a->keys[2 * m]), uint32_t(a->keys[2 * m + 1]), epoch[k], a->n, e.order[k], e.sort_tmp);
    }
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t start = s * a->batch;
      const int bs = int(a->n - start < a->batch ? a->n - start : a->batch);
      e.step(in, start, bs, neg_lr, int(a->loss), thr, false, nullptr, nullptr);
    }
    int mode[NP];
    for (int k = 0; k < NP; ++k) mode[k] = e.slot[k] < 0 ? 0 : (!keras && ff[k] >= 0 ? 1 : 2);
    Check c[NP];
    e.check(in, mode, thr, int(a->loss), false, c);
    bool done[NP] = {};
    int64_t floor_now[NP];
    bool any_done = false;
    for (int k = 0; k < NP; ++k) {
      floor_now[k] = -1;
      if (e.slot[k] < 0) continue;
      const int64_t ep = epoch[k];
      const bool finite = c[k].finite();
      const bool fit = c[k].done_all && c[k].correct == a->n;
      if (finite && fit && ff[k] < 0) ff[k] = ep;
      bool done_fit, done_budget;
      if (keras) {
        const int64_t own = ff[k] >= 0 ? ff[k] + a->wait : NEVER;
        const int64_t fl = floor_given[k] >= 0 ? floor_given[k] : own;
        floor_now[k] = fl;
        done_fit = finite && fit && ep >= std::min(fl, a->max_epochs);
        done_budget = finite && !fit && ep >= a->max_epochs;
      } else {
        done_fit = finite && ff[k] >= 0 && ep - ff[k] >= a->overtrain;
        done_budget = finite && ff[k] < 0 && ep >= a->max_epochs;
      }
      done[k] = !finite || done_fit || done_budget;
      if (done[k]) {
        const int64_t m = e.slot[k];
        a->status[m] = !finite ? 2 : (done_fit ? 0 : 1);
        a->first_fit[m] = ff[k];
        a->epochs[m] = ep;
        a->stop_floor[m] = keras && floor_now[k] < NEVER ? floor_now[k] : -1;
        any_done = true;
      }
    }
    if (!any_done) continue;
    int final_mode[NP];
    for (int k = 0; k < NP; ++k) final_mode[k] = done[k] ? 3 : 0;
    e.check(in, final_mode, thr, int(a->loss), true, c);
    for (int k = 0; k < NP; ++k) {
      if (!done[k]) continue;
      const int64_t m = e.slot[k];
      a->accuracy[m] = double(c[k].correct) / double(a->n);
      a->loss_out[m] = c[k].loss / double(a->n);
      a->fits_by_sign[m] = c[k].sign_correct == a->n;
    }
    if (a->n_test > 0) {
      uint8_t* dst[NP];
      for (int k = 0; k < NP; ++k) dst[k] = done[k] ? a->test_labels + e.slot[k] * a->n_test : nullptr;
      e.predict(test, dst, float(a->label_threshold));
    }
    for (int k = 0; k < NP; ++k) {
      if (!done[k]) continue;
      e.store(k);
      refill(k);
    }
  }
  return 0;
}

}  // extern "C"
