// Prior sampling of fully connected ReLU networks d -> h_1 -> ... -> h_L -> 1 (sgdbayes.prior_sampling).
// Built by sgdbayes.native with -DDIMS=7,40,40,1 and -ffp-contract=off (every fused multiply-add below is written
// out; nothing else may be fused). Needs AVX2 and FMA.
//
// 1. torch's CPU normal stream, bit for bit: Tensor.normal_(generator=torch.Generator().manual_seed(s)) on a
//    contiguous float32 tensor of size >= 16, as torch 2.x runs it on CPUs with AVX2 or AVX-512 kernels
//    (aten/src/ATen/native/cpu/DistributionTemplates.h, normal_fill): the whole tensor is first filled with uniforms
//    u = (w & 0xFFFFFF) * 2^-24 from the 32-bit words w of an MT19937 seeded with the seed's low 32 bits
//    (init_genrand); then each group of 16 becomes 16 normals by Box-Muller on its halves, u1 = 1 - u[0:8],
//    u2 = u[8:16]: r = sqrt(-2 log u1), out[0:8] = r cos(2 pi u2), out[8:16] = r sin(2 pi u2), with log and sincos
//    the cephes polynomials of avx_mathfun.h evaluated in the order torch's compiled kernel evaluates them (its
//    compiler fused some multiply-adds: the same ones are fused here, explicitly); when the size is not a multiple
//    of 16 the last 16 values are recomputed from 16 further uniforms. sgdbayes.prior_sampling checks this stream
//    against torch's on first use and does not use it if they differ (another torch version or CPU kernel).
// 2. A rejection filter: for each network of one block of the stream (row k = normals [k P, (k+1) P), the network's
//    weights [fan_in, fan_out] and biases layer by layer, scaled by sigma_w/sqrt(fan_in) and sigma_b), its logits on
//    the inputs of S, first on 8 of them, then on the rest only for the networks still in; a network is rejected
//    when one of its logits has the wrong sign by more than margin * (sigma_b |b| + alpha ||h|| ||w||), a bound on
//    the magnitude of the terms summed into that logit, far above any difference in float rounding from torch's
//    GEMMs. The survivors (a superset of the networks torch finds fitting S) are returned with their raw normals,
//    and the caller evaluates them exactly as before. The stream is generated in slices of a few networks, so
//    parameters are consumed from cache instead of being written to and read back from memory.

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if !defined(__AVX2__) || !defined(__FMA__)
#error "prior.cpp needs AVX2 and FMA"
#endif
#ifndef DIMS
#error "define DIMS, e.g. -DDIMS=7,40,40,1"
#endif

namespace {

// ------------------------------------------------------------------------------------------------ MT19937
constexpr int MT_N = 624, MT_M = 397;
constexpr uint32_t MT_A = 0x9908b0dfu, UPPER = 0x80000000u, LOWER = 0x7fffffffu;

struct MT {
  uint32_t s[MT_N];
  float u[MT_N];  // the current run of uniforms
  int next;       // next unused entry of u
};

inline uint32_t twist(uint32_t a, uint32_t b, uint32_t c) {
  const uint32_t y = (a & UPPER) | (b & LOWER);
  return c ^ (y >> 1) ^ ((y & 1u) ? MT_A : 0u);
}

void mt_seed(MT& m, uint64_t seed) {
  m.s[0] = uint32_t(seed & 0xffffffffu);
  for (int j = 1; j < MT_N; ++j) m.s[j] = 1812433253u * (m.s[j - 1] ^ (m.s[j - 1] >> 30)) + uint32_t(j);
  m.next = MT_N;
}

#if defined(__AVX512F__)
inline __m512i twist16(__m512i a, __m512i b, __m512i c) {  // twist() on 16 lanes
  const __m512i y = _mm512_or_si512(_mm512_and_si512(a, _mm512_set1_epi32(int(UPPER))),
                                    _mm512_and_si512(b, _mm512_set1_epi32(int(LOWER))));
  const __mmask16 odd = _mm512_test_epi32_mask(y, _mm512_set1_epi32(1));
  const __m512i r = _mm512_xor_si512(c, _mm512_srli_epi32(y, 1));
  return _mm512_mask_xor_epi32(r, odd, r, _mm512_set1_epi32(int(MT_A)));
}
#endif

void mt_refill(MT& m) {
  uint32_t* s = m.s;
  int i = 0;
#if defined(__AVX512F__)
  // 16 words at a time: s[i + 1 .. i + 16] are still the old words, s[i + M] (first loop) old, s[i + M - N] (second
  // loop, 227 behind) already new, exactly as in the one-word recurrence
  auto ld = [](const uint32_t* p) { return _mm512_loadu_si512(p); };
  for (; i + 16 <= MT_N - MT_M; i += 16) _mm512_storeu_si512(s + i, twist16(ld(s + i), ld(s + i + 1), ld(s + i + MT_M)));
#endif
  for (; i < MT_N - MT_M; ++i) s[i] = twist(s[i], s[i + 1], s[i + MT_M]);
#if defined(__AVX512F__)
  for (; i + 16 <= MT_N - 1; i += 16)
    _mm512_storeu_si512(s + i, twist16(ld(s + i), ld(s + i + 1), ld(s + i + MT_M - MT_N)));
#endif
  for (; i < MT_N - 1; ++i) s[i] = twist(s[i], s[i + 1], s[i + MT_M - MT_N]);
  s[MT_N - 1] = twist(s[MT_N - 1], s[0], s[MT_M - 1]);
  for (int i = 0; i < MT_N; ++i) {
    uint32_t y = s[i];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    m.u[i] = float(int32_t(y & 0xFFFFFFu)) * (1.0f / 16777216.0f);  // exact
  }
  m.next = 0;
}

void mt_uniforms(MT& m, float* dst, int64_t count) {
  while (count > 0) {
    if (m.next == MT_N) mt_refill(m);
    const int64_t take = count < MT_N - m.next ? count : MT_N - m.next;
    std::memcpy(dst, m.u + m.next, sizeof(float) * take);
    m.next += int(take);
    dst += take;
    count -= take;
  }
}

// ------------------------------------------------------------------------------------------------ Box-Muller
#define C8(x) _mm256_set1_ps(x)
#define I8(x) _mm256_set1_epi32(x)

inline __m256 log8(__m256 x) {  // avx_mathfun log256_ps, with the multiply-adds torch's build fuses
  const __m256 one = C8(1.0f);
  const __m256 invalid = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OS);
  x = _mm256_max_ps(x, _mm256_castsi256_ps(I8(0x00800000)));
  __m256i imm0 = _mm256_srli_epi32(_mm256_castps_si256(x), 23);
  x = _mm256_and_ps(x, _mm256_castsi256_ps(I8(~0x7f800000)));
  x = _mm256_or_ps(x, C8(0.5f));
  imm0 = _mm256_sub_epi32(imm0, I8(0x7f));
  __m256 e = _mm256_add_ps(_mm256_cvtepi32_ps(imm0), one);
  const __m256 mask = _mm256_cmp_ps(x, C8(0.707106781186547524f), _CMP_LT_OS);
  const __m256 tmp = _mm256_and_ps(x, mask);
  x = _mm256_sub_ps(x, one);
  e = _mm256_sub_ps(e, _mm256_and_ps(one, mask));
  x = _mm256_add_ps(x, tmp);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 y = _mm256_fmadd_ps(C8(7.0376836292E-2f), x, C8(-1.1514610310E-1f));
  y = _mm256_fmadd_ps(y, x, C8(1.1676998740E-1f));
  y = _mm256_fmadd_ps(y, x, C8(-1.2420140846E-1f));
  y = _mm256_fmadd_ps(y, x, C8(1.4249322787E-1f));
  y = _mm256_fmadd_ps(y, x, C8(-1.6668057665E-1f));
  y = _mm256_fmadd_ps(y, x, C8(2.0000714765E-1f));
  y = _mm256_fmadd_ps(y, x, C8(-2.4999993993E-1f));
  y = _mm256_fmadd_ps(y, x, C8(3.3333331174E-1f));
  y = _mm256_mul_ps(y, x);
  y = _mm256_fmadd_ps(y, z, _mm256_mul_ps(e, C8(-2.12194440e-4f)));
  y = _mm256_fnmadd_ps(z, C8(0.5f), y);
  x = _mm256_add_ps(x, y);
  x = _mm256_fmadd_ps(e, C8(0.693359375f), x);
  return _mm256_or_ps(x, invalid);
}

inline void sincos8(__m256 x, __m256* s, __m256* c) {  // avx_mathfun sincos256_ps, fused as torch's build
  __m256 sign_sin = _mm256_and_ps(x, _mm256_castsi256_ps(I8(int(0x80000000u))));
  x = _mm256_and_ps(x, _mm256_castsi256_ps(I8(~int(0x80000000u))));
  __m256 y = _mm256_mul_ps(x, C8(1.27323954473516f));
  __m256i imm2 = _mm256_cvttps_epi32(y);
  imm2 = _mm256_add_epi32(imm2, I8(1));
  imm2 = _mm256_and_si256(imm2, I8(~1));
  y = _mm256_cvtepi32_ps(imm2);
  __m256i imm4 = imm2;
  const __m256i imm0 = _mm256_slli_epi32(_mm256_and_si256(imm2, I8(4)), 29);
  imm2 = _mm256_cmpeq_epi32(_mm256_and_si256(imm2, I8(2)), _mm256_setzero_si256());
  const __m256 swap_sign_sin = _mm256_castsi256_ps(imm0);
  const __m256 poly_mask = _mm256_castsi256_ps(imm2);
  x = _mm256_fmadd_ps(y, C8(-0.78515625f), x);
  x = _mm256_fmadd_ps(y, C8(-2.4187564849853515625e-4f), x);
  x = _mm256_fmadd_ps(y, C8(-3.77489497744594108e-8f), x);
  imm4 = _mm256_sub_epi32(imm4, I8(2));
  imm4 = _mm256_andnot_si256(imm4, I8(4));
  imm4 = _mm256_slli_epi32(imm4, 29);
  const __m256 sign_cos = _mm256_castsi256_ps(imm4);
  sign_sin = _mm256_xor_ps(sign_sin, swap_sign_sin);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 yc = _mm256_fmadd_ps(C8(2.443315711809948E-005f), z, C8(-1.388731625493765E-003f));
  yc = _mm256_fmadd_ps(yc, z, C8(4.166664568298827E-002f));
  yc = _mm256_mul_ps(yc, z);
  yc = _mm256_fmsub_ps(yc, z, _mm256_mul_ps(z, C8(0.5f)));
  yc = _mm256_add_ps(yc, C8(1.0f));
  __m256 ys = _mm256_fmadd_ps(C8(-1.9515295891E-4f), z, C8(8.3321608736E-3f));
  ys = _mm256_fmadd_ps(ys, z, C8(-1.6666654611E-1f));
  ys = _mm256_mul_ps(ys, z);
  ys = _mm256_fmadd_ps(ys, x, x);
  const __m256 ysin2 = _mm256_and_ps(poly_mask, ys);
  const __m256 ysin1 = _mm256_andnot_ps(poly_mask, yc);
  ys = _mm256_sub_ps(ys, ysin2);
  yc = _mm256_sub_ps(yc, ysin1);
  *s = _mm256_xor_ps(_mm256_add_ps(ysin1, ysin2), sign_sin);
  *c = _mm256_xor_ps(_mm256_add_ps(yc, ys), sign_cos);
}

inline void box_muller16(float* d) {  // NormalFill16<float> (AVX2) with mean 0, std 1
  const __m256 u1 = _mm256_sub_ps(C8(1.0f), _mm256_loadu_ps(d));
  const __m256 u2 = _mm256_loadu_ps(d + 8);
  const __m256 radius = _mm256_sqrt_ps(_mm256_mul_ps(C8(-2.0f), log8(u1)));
  const __m256 theta = _mm256_mul_ps(C8(float(2.0f * 3.14159265358979323846)), u2);
  __m256 s, c;
  sincos8(theta, &s, &c);
  _mm256_storeu_ps(d, _mm256_fmadd_ps(_mm256_mul_ps(radius, c), C8(1.0f), _mm256_setzero_ps()));
  _mm256_storeu_ps(d + 8, _mm256_fmadd_ps(_mm256_mul_ps(radius, s), C8(1.0f), _mm256_setzero_ps()));
}

#if defined(__AVX512F__)
// The same Box-Muller on two groups at once (lanes 0-7 from group A, 8-15 from group B): every lane runs exactly the
// operations of log8 / sincos8 / box_muller16 above, so the values are bit-identical; sixteen lanes and two
// independent chains per call instead of eight and one (the AVX2 form is latency-bound).
#define C16(x) _mm512_set1_ps(x)
#define I16(x) _mm512_set1_epi32(x)
inline __m512 and16(__m512 a, __m512i b) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), b)); }
inline __m512 xor16(__m512 a, __m512 b) {
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}

inline __m512 log16(__m512 x) {
  const __m512 one = C16(1.0f);
  const __mmask16 invalid = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LE_OS);
  x = _mm512_max_ps(x, _mm512_castsi512_ps(I16(0x00800000)));
  __m512i imm0 = _mm512_srli_epi32(_mm512_castps_si512(x), 23);
  x = and16(x, I16(~0x7f800000));
  x = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(x), _mm512_castps_si512(C16(0.5f))));
  imm0 = _mm512_sub_epi32(imm0, I16(0x7f));
  __m512 e = _mm512_add_ps(_mm512_cvtepi32_ps(imm0), one);
  const __mmask16 mask = _mm512_cmp_ps_mask(x, C16(0.707106781186547524f), _CMP_LT_OS);
  const __m512 tmp = _mm512_maskz_mov_ps(mask, x);
  x = _mm512_sub_ps(x, one);
  e = _mm512_sub_ps(e, _mm512_maskz_mov_ps(mask, one));
  x = _mm512_add_ps(x, tmp);
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 y = _mm512_fmadd_ps(C16(7.0376836292E-2f), x, C16(-1.1514610310E-1f));
  y = _mm512_fmadd_ps(y, x, C16(1.1676998740E-1f));
  y = _mm512_fmadd_ps(y, x, C16(-1.2420140846E-1f));
  y = _mm512_fmadd_ps(y, x, C16(1.4249322787E-1f));
  y = _mm512_fmadd_ps(y, x, C16(-1.6668057665E-1f));
  y = _mm512_fmadd_ps(y, x, C16(2.0000714765E-1f));
  y = _mm512_fmadd_ps(y, x, C16(-2.4999993993E-1f));
  y = _mm512_fmadd_ps(y, x, C16(3.3333331174E-1f));
  y = _mm512_mul_ps(y, x);
  y = _mm512_fmadd_ps(y, z, _mm512_mul_ps(e, C16(-2.12194440e-4f)));
  y = _mm512_fnmadd_ps(z, C16(0.5f), y);
  x = _mm512_add_ps(x, y);
  x = _mm512_fmadd_ps(e, C16(0.693359375f), x);
  return _mm512_mask_mov_ps(x, invalid, _mm512_castsi512_ps(I16(-1)));  // or with all ones
}

inline void sincos16(__m512 x, __m512* s, __m512* c) {
  __m512 sign_sin = and16(x, I16(int(0x80000000u)));
  x = and16(x, I16(~int(0x80000000u)));
  __m512 y = _mm512_mul_ps(x, C16(1.27323954473516f));
  __m512i imm2 = _mm512_cvttps_epi32(y);
  imm2 = _mm512_add_epi32(imm2, I16(1));
  imm2 = _mm512_and_si512(imm2, I16(~1));
  y = _mm512_cvtepi32_ps(imm2);
  __m512i imm4 = imm2;
  const __m512i imm0 = _mm512_slli_epi32(_mm512_and_si512(imm2, I16(4)), 29);
  const __mmask16 poly = _mm512_cmpeq_epi32_mask(_mm512_and_si512(imm2, I16(2)), _mm512_setzero_si512());
  const __m512 swap_sign_sin = _mm512_castsi512_ps(imm0);
  x = _mm512_fmadd_ps(y, C16(-0.78515625f), x);
  x = _mm512_fmadd_ps(y, C16(-2.4187564849853515625e-4f), x);
  x = _mm512_fmadd_ps(y, C16(-3.77489497744594108e-8f), x);
  imm4 = _mm512_sub_epi32(imm4, I16(2));
  imm4 = _mm512_andnot_si512(imm4, I16(4));
  imm4 = _mm512_slli_epi32(imm4, 29);
  const __m512 sign_cos = _mm512_castsi512_ps(imm4);
  sign_sin = xor16(sign_sin, swap_sign_sin);
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 yc = _mm512_fmadd_ps(C16(2.443315711809948E-005f), z, C16(-1.388731625493765E-003f));
  yc = _mm512_fmadd_ps(yc, z, C16(4.166664568298827E-002f));
  yc = _mm512_mul_ps(yc, z);
  yc = _mm512_fmsub_ps(yc, z, _mm512_mul_ps(z, C16(0.5f)));
  yc = _mm512_add_ps(yc, C16(1.0f));
  __m512 ys = _mm512_fmadd_ps(C16(-1.9515295891E-4f), z, C16(8.3321608736E-3f));
  ys = _mm512_fmadd_ps(ys, z, C16(-1.6666654611E-1f));
  ys = _mm512_mul_ps(ys, z);
  ys = _mm512_fmadd_ps(ys, x, x);
  const __m512 ysin2 = _mm512_maskz_mov_ps(poly, ys);
  const __m512 ysin1 = _mm512_maskz_mov_ps(__mmask16(~poly), yc);
  ys = _mm512_sub_ps(ys, ysin2);
  yc = _mm512_sub_ps(yc, ysin1);
  *s = xor16(_mm512_add_ps(ysin1, ysin2), sign_sin);
  *c = xor16(_mm512_add_ps(yc, ys), sign_cos);
}

inline void box_muller_pair(float* a, float* b) {  // box_muller16(a); box_muller16(b)
  const __m512 lo = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a)), _mm256_loadu_ps(b), 1);
  const __m512 hi = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a + 8)), _mm256_loadu_ps(b + 8), 1);
  const __m512 u1 = _mm512_sub_ps(C16(1.0f), lo);
  const __m512 radius = _mm512_sqrt_ps(_mm512_mul_ps(C16(-2.0f), log16(u1)));
  const __m512 theta = _mm512_mul_ps(C16(float(2.0f * 3.14159265358979323846)), hi);
  __m512 sn, cs;
  sincos16(theta, &sn, &cs);
  const __m512 x0 = _mm512_fmadd_ps(_mm512_mul_ps(radius, cs), C16(1.0f), _mm512_setzero_ps());
  const __m512 x1 = _mm512_fmadd_ps(_mm512_mul_ps(radius, sn), C16(1.0f), _mm512_setzero_ps());
  _mm256_storeu_ps(a, _mm512_castps512_ps256(x0));
  _mm256_storeu_ps(a + 8, _mm512_castps512_ps256(x1));
  _mm256_storeu_ps(b, _mm512_extractf32x8_ps(x0, 1));
  _mm256_storeu_ps(b + 8, _mm512_extractf32x8_ps(x1, 1));
}
#endif

#if defined(__AVX512F__)
inline __m512 load_pair(const float* a, const float* b) {  // a[0:8] in lanes 0-7, b[0:8] in lanes 8-15
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a)), _mm256_loadu_ps(b), 1);
}
inline void store_pair(float* a, float* b, __m512 v) {
  _mm256_storeu_ps(a, _mm512_castps512_ps256(v));
  _mm256_storeu_ps(b, _mm512_extractf32x8_ps(v, 1));
}
#endif

// box_muller16 on `groups` consecutive groups of 16 uniforms at u, the normals written to d (d may equal u). With
// AVX-512, in two passes over pairs of groups: first every radius sqrt(-2 log(1 - u1)), written to d's u1 slots
// (independent iterations, so the long square roots overlap), then every angle and the products — the same
// operations on every lane as box_muller16, so the same values.
inline void box_muller_groups(const float* u, float* d, int64_t groups) {
  int64_t g = 0;
#if defined(__AVX512F__)
  const int64_t pairs = groups / 2;
  for (int64_t q = 0; q < pairs; ++q) {
    const float* a = u + 32 * q;
    const __m512 u1 = _mm512_sub_ps(C16(1.0f), load_pair(a, a + 16));
    float* o = d + 32 * q;
    store_pair(o, o + 16, _mm512_sqrt_ps(_mm512_mul_ps(C16(-2.0f), log16(u1))));
  }
  for (int64_t q = 0; q < pairs; ++q) {
    float* a = d + 32 * q;
    const float* b = u + 32 * q;
    const __m512 radius = load_pair(a, a + 16);
    const __m512 theta = _mm512_mul_ps(C16(float(2.0f * 3.14159265358979323846)), load_pair(b + 8, b + 24));
    __m512 sn, cs;
    sincos16(theta, &sn, &cs);
    store_pair(a, a + 16, _mm512_fmadd_ps(_mm512_mul_ps(radius, cs), C16(1.0f), _mm512_setzero_ps()));
    store_pair(a + 8, a + 24, _mm512_fmadd_ps(_mm512_mul_ps(radius, sn), C16(1.0f), _mm512_setzero_ps()));
  }
  g = 2 * pairs;
#endif
  for (; g < groups; ++g) {
    if (d != u) std::memcpy(d + 16 * g, u + 16 * g, sizeof(float) * 16);
    box_muller16(d + 16 * g);
  }
}

// The normals of one stream of `size` values (torch's tensor size, >= 16), handed out in order, a slice at a time.
// Values [0, cut) come from whole groups of the uniforms U[0, size); when size % 16 != 0, values [cut, size) with
// cut = size - 16 come from 16 further uniforms V (torch's recomputation of the last 16 values).
struct NormalStream {
  MT mt;
  int64_t size, cut, pos;
  float carry[16];  // the current group; carry_at = stream position of carry[0]
  int64_t carry_at;
  float tail[16];
  bool tail_ready;

  void init(uint64_t seed, int64_t n) {
    mt_seed(mt, seed);
    size = n;
    cut = n % 16 ? n - 16 : n;
    pos = 0;
    carry_at = -16;
    tail_ready = false;
  }

  void take(float* dst, int64_t count) {
    while (count > 0) {
      if (pos < cut) {
        if (pos < carry_at + 16) {  // inside the current group
          int64_t n = carry_at + 16 - pos;
          if (n > count) n = count;
          if (n > cut - pos) n = cut - pos;
          std::memcpy(dst, carry + (pos - carry_at), sizeof(float) * n);
          dst += n; pos += n; count -= n;
          continue;
        }
        // pos is at a group start: whole groups straight into dst, or the next group into carry
        int64_t groups = (count < cut - pos ? count : cut - pos) / 16;
        if (groups > 0) {
          if (mt.next % 16 == 0) {  // groups lie inside refills (624 = 39 x 16): straight from the generator
            for (int64_t left = groups; left > 0;) {
              if (mt.next == MT_N) mt_refill(mt);
              const int64_t k = std::min<int64_t>(left, (MT_N - mt.next) / 16);
              box_muller_groups(mt.u + mt.next, dst + 16 * (groups - left), k);
              mt.next += int(16 * k);
              left -= k;
            }
          } else {
            mt_uniforms(mt, dst, groups * 16);
            box_muller_groups(dst, dst, groups);
          }
          dst += groups * 16; pos += groups * 16; count -= groups * 16;
          carry_at = pos - 16;  // (the last group made, fully handed out)
        } else {
          mt_uniforms(mt, carry, 16);
          box_muller16(carry);
          carry_at = pos;
        }
      } else {
        if (!tail_ready) {  // the uniforms of [full_end, size) are drawn and dropped, then the 16 of the tail
          float drop[16];
          mt_uniforms(mt, drop, size - (size - size % 16));
          mt_uniforms(mt, tail, 16);
          box_muller16(tail);
          tail_ready = true;
        }
        int64_t n = size - pos < count ? size - pos : count;
        std::memcpy(dst, tail + (pos - cut), sizeof(float) * n);
        dst += n; pos += n; count -= n;
      }
    }
  }
};

// ------------------------------------------------------------------------------------------------ filter
constexpr int kDims[] = {DIMS};
constexpr int NL = int(sizeof(kDims) / sizeof(int)) - 1;
static_assert(NL >= 1 && kDims[NL] == 1, "one logit");
constexpr int n_params() {
  int p = 0;
  for (int l = 0; l < NL; ++l) p += kDims[l] * kDims[l + 1] + kDims[l + 1];
  return p;
}
constexpr int P = n_params();
constexpr int max_width() {
  int w = 0;
  for (int l = 0; l <= NL; ++l) w = kDims[l] > w ? kDims[l] : w;
  return w;
}
constexpr int WMAX = max_width();
constexpr int R = 8;  // inputs evaluated together

template <int N>
struct VF {
  typedef float type __attribute__((vector_size(N * sizeof(float)), aligned(sizeof(float))));
};

// The filter needs no bit-exactness (its margin covers rounding), so its multiply-adds may be fused by the compiler.
#define FUSED __attribute__((optimize("fp-contract=fast")))

// out[r][C0 : C0+K*N] = relu(alpha * sum_i h[r][i] W[i][C0 : ...] + beta * b[C0 : ...]) for r < R
template <int IN, int OUT, int C0, int N, int K>
FUSED inline void dense_tile(const float* __restrict W, const float* __restrict b, const float* __restrict h,
                             float* __restrict out, float alpha, float beta) {
  typedef typename VF<N>::type v;
  constexpr int RT = N * K >= 32 ? 4 : 8;  // rows per pass: <= ~12 accumulator vectors
  for (int r0 = 0; r0 < R; r0 += RT) {
    v acc[RT][K];
    for (int r = 0; r < RT; ++r)
      for (int k = 0; k < K; ++k) acc[r][k] = v{};
    for (int i = 0; i < IN; ++i) {
      const v* w = reinterpret_cast<const v*>(W + i * OUT + C0);
      v ws[K];
      for (int k = 0; k < K; ++k) ws[k] = w[k];
      for (int r = 0; r < RT; ++r) {
        const float x = h[(r0 + r) * IN + i];
        for (int k = 0; k < K; ++k) acc[r][k] += x * ws[k];
      }
    }
    const v* bb = reinterpret_cast<const v*>(b + C0);
    for (int r = 0; r < RT; ++r)
      for (int k = 0; k < K; ++k) {
        const v z = alpha * acc[r][k] + beta * bb[k];
        *reinterpret_cast<v*>(out + (r0 + r) * OUT + C0 + k * N) = z < 0.0f ? v{} : z;
      }
  }
}

template <int IN, int OUT, int C0>
inline void dense_cols(const float* W, const float* b, const float* h, float* out, float alpha, float beta) {
  constexpr int REM = OUT - C0;
  if constexpr (REM >= 32) {
    dense_tile<IN, OUT, C0, 16, 2>(W, b, h, out, alpha, beta);
    dense_cols<IN, OUT, C0 + 32>(W, b, h, out, alpha, beta);
  } else if constexpr (REM >= 16) {
    dense_tile<IN, OUT, C0, 16, 1>(W, b, h, out, alpha, beta);
    dense_cols<IN, OUT, C0 + 16>(W, b, h, out, alpha, beta);
  } else if constexpr (REM >= 8) {
    dense_tile<IN, OUT, C0, 8, 1>(W, b, h, out, alpha, beta);
    dense_cols<IN, OUT, C0 + 8>(W, b, h, out, alpha, beta);
  } else if constexpr (REM >= 1) {
    dense_tile<IN, OUT, C0, 1, REM>(W, b, h, out, alpha, beta);
  }
}

// the hidden layers on the R rows in h (tmp: a second buffer, the two used in turn); returns the buffer holding the
// last hidden layer
template <int l>
inline float* hidden_layers(const float* p, float* h, float* tmp, float sw, float sb) {
  if constexpr (l < NL - 1) {
    constexpr int IN = kDims[l], OUT = kDims[l + 1];
    dense_cols<IN, OUT, 0>(p, p + IN * OUT, h, tmp, sw / std::sqrt(float(IN)), sb);
    return hidden_layers<l + 1>(p + IN * OUT + OUT, tmp, h, sw, sb);
  } else {
    return h;
  }
}

constexpr int readout_offset() {
  int p = 0;
  for (int l = 0; l < NL - 1; ++l) p += kDims[l] * kDims[l + 1] + kDims[l + 1];
  return p;
}

// true when some row r < rows has a logit of the wrong sign beyond the margin
FUSED inline bool rejects(const float* p, const float* x, const uint8_t* y, int rows, float sw, float sb, float margin) {
  alignas(64) float h[R * WMAX];
  alignas(64) float tmp[R * WMAX];
  std::memset(h, 0, sizeof(h));
  std::memcpy(h, x, sizeof(float) * rows * kDims[0]);
  const float* hl = hidden_layers<0>(p, h, tmp, sw, sb);
  constexpr int IN = kDims[NL - 1];
  const float* w = p + readout_offset();
  const float bias = w[IN];
  const float alpha = sw / std::sqrt(float(IN));
  float wp[8] = {};  // |w|^2 in 8 partial sums (a bound, not bit-exact: any order will do)
  {
    int i = 0;
    for (; i + 8 <= IN; i += 8)
      for (int j = 0; j < 8; ++j) wp[j] = std::fma(w[i + j], w[i + j], wp[j]);
    for (; i < IN; ++i) wp[0] = std::fma(w[i], w[i], wp[0]);
  }
  float wn = 0.0f;
  for (int j = 0; j < 8; ++j) wn += wp[j];
  wn = std::sqrt(wn);
  for (int r = 0; r < rows; ++r) {
    float acc[8] = {}, hn[8] = {};
    int i = 0;
    for (; i + 8 <= IN; i += 8)
      for (int j = 0; j < 8; ++j) {
        acc[j] = std::fma(hl[r * IN + i + j], w[i + j], acc[j]);
        hn[j] = std::fma(hl[r * IN + i + j], hl[r * IN + i + j], hn[j]);
      }
    for (; i < IN; ++i) {
      acc[0] = std::fma(hl[r * IN + i], w[i], acc[0]);
      hn[0] = std::fma(hl[r * IN + i], hl[r * IN + i], hn[0]);
    }
    float s = 0.0f, n2 = 0.0f;
    for (int j = 0; j < 8; ++j) { s += acc[j]; n2 += hn[j]; }
    const float z = std::fma(alpha, s, sb * bias);
    const float scale = sb * std::fabs(bias) + alpha * std::sqrt(n2) * wn;
    const bool wrong = (z > 0.0f) != (y[r] != 0);
    if (wrong && std::fabs(z) > margin * scale) return true;
  }
  return false;
}

}  // namespace

extern "C" {

int sgdb_prior_n_params() { return P; }

// torch's normal_ of `size` values (>= 16) with a generator seeded by `seed`, into out.
void sgdb_normal_fill(uint64_t seed, float* out, int64_t size) {
  NormalStream st;
  st.init(seed, size);
  st.take(out, size);
}

// m streams of `size` values (>= 16) each: row i of out [m, size] is torch's normal_ with a generator seeded by
// seeds[i] (sgdbayes.ensembles.FCN.init_network's draw, one network per row).
void sgdb_normal_fill_many(const uint64_t* seeds, int64_t m, float* out, int64_t size) {
  NormalStream st;
  for (int64_t i = 0; i < m; ++i) {
    st.init(seeds[i], size);
    st.take(out + i * size, size);
  }
}

// The networks of block `seed` (a stream of block * P normals; only its first n_keep networks are looked at) that
// the filter keeps on S (x_s [n_s, d], y_s [n_s] in {0,1}; n_first inputs first): their indices in the block into
// idx (ascending) and their raw normals into params [count, P]. Returns the count (<= n_keep).
int64_t sgdb_prior_filter(uint64_t seed, int64_t block, int64_t n_keep, const float* x_s, const uint8_t* y_s,
                          int64_t n_s, int64_t n_first, float sigma_w, float sigma_b, float margin, int64_t* idx,
                          float* params) {
  constexpr int NB = 8;  // networks per slice of the stream
  float* buf = static_cast<float*>(std::aligned_alloc(64, ((sizeof(float) * NB * P + 63) / 64) * 64));
  if (!buf) return -1;
  NormalStream st;
  st.init(seed, block * P);
  alignas(64) float xs[R * WMAX];
  alignas(64) uint8_t ys[R];
  int64_t found = 0;
  for (int64_t k0 = 0; k0 < n_keep; k0 += NB) {
    const int nb = int(n_keep - k0 < NB ? n_keep - k0 : NB);
    st.take(buf, int64_t(nb) * P);
    for (int k = 0; k < nb; ++k) {
      const float* p = buf + int64_t(k) * P;
      bool out = false;
      for (int64_t s0 = 0; s0 < n_s && !out;) {
        const int64_t first_end = s0 == 0 && n_first > 0 && n_first < n_s ? n_first : n_s;
        const int rows = int(first_end - s0 < R ? first_end - s0 : R);
        std::memcpy(xs, x_s + s0 * kDims[0], sizeof(float) * rows * kDims[0]);
        std::memcpy(ys, y_s + s0, rows);
        out = rejects(p, xs, ys, rows, sigma_w, sigma_b, margin);
        s0 += rows;
      }
      if (!out) {
        idx[found] = k0 + k;
        std::memcpy(params + found * P, p, sizeof(float) * P);
        ++found;
      }
    }
  }
  std::free(buf);
  return found;
}

}  // extern "C"
