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
//    the inputs of S, two inputs at a time, stopping at the first pair that rejects it; a network is rejected when
//    one of its logits has the wrong sign by more than margin * (sigma_b |b| + alpha ||h|| ||w||), a bound on
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
constexpr int MT_U = 2 * MT_N;  // uniforms per refill: two twists, an even number of 16-value groups (78)
constexpr uint32_t MT_A = 0x9908b0dfu, UPPER = 0x80000000u, LOWER = 0x7fffffffu;

struct MT {
  uint32_t s[MT_N];
  float u[MT_U];  // the current run of uniforms
  int next;       // next unused entry of u
};

inline uint32_t twist(uint32_t a, uint32_t b, uint32_t c) {
  const uint32_t y = (a & UPPER) | (b & LOWER);
  return c ^ (y >> 1) ^ ((y & 1u) ? MT_A : 0u);
}

void mt_seed(MT& m, uint64_t seed) {
  m.s[0] = uint32_t(seed & 0xffffffffu);
  for (int j = 1; j < MT_N; ++j) m.s[j] = 1812433253u * (m.s[j - 1] ^ (m.s[j - 1] >> 30)) + uint32_t(j);
  m.next = MT_U;
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

// one twist of the state, its 624 tempered words written to out as uniforms (w & 0xFFFFFF) * 2^-24
void mt_twist(uint32_t* s, float* out) {
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
    out[i] = float(int32_t(y & 0xFFFFFFu)) * (1.0f / 16777216.0f);  // exact
  }
}

void mt_refill(MT& m) {
  mt_twist(m.s, m.u);
  mt_twist(m.s, m.u + MT_N);
  m.next = 0;
}

void mt_uniforms(MT& m, float* dst, int64_t count) {
  while (count > 0) {
    if (m.next == MT_U) mt_refill(m);
    const int64_t take = count < MT_U - m.next ? count : MT_U - m.next;
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

// log8 on 16 lanes, for x = 1 - u in [2^-24, 1] only: log8's clamp to the smallest normal and its NaN for x <= 0
// leave such x unchanged, so they are left out
inline __m512 log16(__m512 x) {
  const __m512 one = C16(1.0f);
  __m512i imm0 = _mm512_srli_epi32(_mm512_castps_si512(x), 23);
  x = and16(x, I16(~0x7f800000));
  x = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(x), _mm512_castps_si512(C16(0.5f))));
  imm0 = _mm512_sub_epi32(imm0, I16(0x7f));
  __m512 e = _mm512_add_ps(_mm512_cvtepi32_ps(imm0), one);
  // log8 adds a zero to x - 1 and subtracts a zero from e in the lanes outside the mask; x - 1 is never 0 there
  // (x < 1) and e - 0 = e, so masked operations give the same values
  const __mmask16 mask = _mm512_cmp_ps_mask(x, C16(0.707106781186547524f), _CMP_LT_OS);
  const __m512 xm1 = _mm512_sub_ps(x, one);
  e = _mm512_mask_sub_ps(e, mask, e, one);
  x = _mm512_mask_add_ps(xm1, mask, xm1, x);
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
  return _mm512_fmadd_ps(e, C16(0.693359375f), x);
}

// sincos8 on 16 lanes, for x = 2 pi u >= +0 only: sincos8's sign extraction and absolute value leave such x
// unchanged, so they are left out
inline void sincos16(__m512 x, __m512* s, __m512* c) {
  __m512 y = _mm512_mul_ps(x, C16(1.27323954473516f));
  __m512i imm2 = _mm512_cvttps_epi32(y);
  imm2 = _mm512_add_epi32(imm2, I16(1));
  imm2 = _mm512_and_si512(imm2, I16(~1));
  y = _mm512_cvtepi32_ps(imm2);
  __m512i imm4 = imm2;
  const __m512i imm0 = _mm512_slli_epi32(_mm512_and_si512(imm2, I16(4)), 29);
  const __mmask16 poly = _mm512_testn_epi32_mask(imm2, I16(2));
  const __m512 swap_sign_sin = _mm512_castsi512_ps(imm0);
  x = _mm512_fmadd_ps(y, C16(-0.78515625f), x);
  x = _mm512_fmadd_ps(y, C16(-2.4187564849853515625e-4f), x);
  x = _mm512_fmadd_ps(y, C16(-3.77489497744594108e-8f), x);
  imm4 = _mm512_sub_epi32(imm4, I16(2));
  imm4 = _mm512_andnot_si512(imm4, I16(4));
  imm4 = _mm512_slli_epi32(imm4, 29);
  const __m512 sign_cos = _mm512_castsi512_ps(imm4);
  const __m512 sign_sin = swap_sign_sin;
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
  // sincos8 selects between ys and yc by adding and subtracting masked copies, which turns a -0 into +0; neither is
  // ever -0 here (yc >= cos(pi/4); ys has the sign of the reduced argument, which is +0 at worst), so blends give
  // the same values
  *s = xor16(_mm512_mask_blend_ps(poly, yc, ys), sign_sin);
  *c = xor16(_mm512_mask_blend_ps(poly, ys, yc), sign_cos);
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
    // fma(r c, 1, 0) as in box_muller16 is fma(r, c, 0): both round r c once and turn an exact -0 into +0 (and
    // |r c| is never so small that it would underflow)
    store_pair(a, a + 16, _mm512_fmadd_ps(radius, cs, _mm512_setzero_ps()));
    store_pair(a + 8, a + 24, _mm512_fmadd_ps(radius, sn, _mm512_setzero_ps()));
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
          if (mt.next % 16 == 0) {  // groups lie inside refills (1248 = 78 x 16): straight from the generator
            for (int64_t left = groups; left > 0;) {
              if (mt.next == MT_U) mt_refill(mt);
              const int64_t k = std::min<int64_t>(left, (MT_U - mt.next) / 16);
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

#if defined(__AVX512F__)
constexpr int V = 16;  // floats per vector register
#else
constexpr int V = 8;
#endif
typedef float vec __attribute__((vector_size(V * sizeof(float))));
typedef int32_t ivec __attribute__((vector_size(V * sizeof(int32_t))));
typedef float uvec __attribute__((vector_size(V * sizeof(float)), aligned(sizeof(float))));  // unaligned access
constexpr int nvec(int n) { return (n + V - 1) / V; }
constexpr int max_nvec() {
  int w = 0;
  for (int l = 0; l <= NL; ++l) w = nvec(kDims[l]) > w ? nvec(kDims[l]) : w;
  return w;
}
constexpr int HV = max_nvec() * V;  // floats per row of a layer buffer (inputs included: the linear model's)
// The vector loads of a layer's last row read up to V - 1 floats past the layer's end (into what follows it in the
// parameters, or into this padding after the last network): those lanes are masked before they are used.
constexpr int PAD = V;

inline vec load(const float* p) { return *reinterpret_cast<const uvec*>(p); }
inline vec lanes_below(int n, int k) {  // 1 in the lanes of vector k whose column is < n, else 0
  ivec lane;
  for (int j = 0; j < V; ++j) lane[j] = k * V + j;
  return lane < n ? vec{} + 1.0f : vec{};
}

// The filter needs no bit-exactness (its margin covers rounding), so its multiply-adds may be fused by the compiler.
#define FUSED __attribute__((optimize("fp-contract=fast")))

// One dense ReLU layer on RB rows: out[r][0:OUT] = relu(alpha * h[r] @ W + beta * b), W [IN, OUT] row-major, rows of
// h `hstride` floats apart, rows of out HV floats apart, out's lanes >= OUT set to 0. The sum over i runs as two
// interleaved partial sums so that each accumulator's chain of dependent multiply-adds is half as long.
template <int IN, int OUT, int RB>
FUSED inline void dense_relu(const float* __restrict W, const float* __restrict b, const float* __restrict h,
                             int hstride, float* __restrict out, float alpha, float beta) {
  constexpr int NV = nvec(OUT);
  vec acc[2][RB][NV];
#pragma GCC unroll 8
  for (int q = 0; q < 2; ++q)
    for (int r = 0; r < RB; ++r)
      for (int k = 0; k < NV; ++k) acc[q][r][k] = vec{};
  // (q is a constant in every unrolled step, so that the accumulators stay in registers)
  auto step = [&](int i, int q) __attribute__((always_inline)) {
    vec w[NV];
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) w[k] = load(W + i * OUT + k * V);
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) {
      const float x = h[r * hstride + i];
#pragma GCC unroll 8
      for (int k = 0; k < NV; ++k) acc[q][r][k] += x * w[k];
    }
  };
  int i = 0;
  for (; i + 2 <= IN; i += 2) {
    step(i, 0);
    step(i + 1, 1);
  }
  if (i < IN) step(i, 0);
#pragma GCC unroll 8
  for (int k = 0; k < NV; ++k) {
    const vec bias = beta * load(b + k * V);
    const vec keep = lanes_below(OUT, k);
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) {
      const vec z = alpha * (acc[0][r][k] + acc[1][r][k]) + bias;
      *reinterpret_cast<vec*>(out + r * HV + k * V) = (z > 0.0f ? z : vec{}) * keep;
    }
  }
}

// the hidden layers l ... NL - 1 on RB rows (h: rows `hstride` apart; a, c: two row buffers used in turn); returns
// the buffer holding the last hidden layer (rows HV apart)
template <int l, int RB>
inline const float* hidden(const float* p, const float* h, int hstride, float* a, float* c, float sw, float sb) {
  if constexpr (l < NL - 1) {
    constexpr int IN = kDims[l], OUT = kDims[l + 1];
    dense_relu<IN, OUT, RB>(p, p + IN * OUT, h, hstride, a, sw / std::sqrt(float(IN)), sb);
    return hidden<l + 1, RB>(p + IN * OUT + OUT, a, HV, c, a, sw, sb);
  } else {
    return h;
  }
}

constexpr int readout_offset() {
  int p = 0;
  for (int l = 0; l < NL - 1; ++l) p += kDims[l] * kDims[l + 1] + kDims[l + 1];
  return p;
}

inline float hsum(vec v) {  // pairwise: a chain of log2(V) additions, not V
#if defined(__AVX512F__)
  return _mm512_reduce_add_ps(v);
#else
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
#endif
}

// One network p on RB rows x (d floats each) with labels y: true when one of the rows has a logit of the wrong sign
// by more than margin * (sigma_b |bias| + alpha ||h|| ||w||), the bound on the magnitude of the readout's terms.
// w_norm = ||w||, the readout weights' norm.
template <int RB>
FUSED inline bool rows_reject(const float* p, const float* x, const uint8_t* y, float sw, float sb, float margin,
                              float w_norm) {
  alignas(64) float a[RB * HV];
  alignas(64) float c[RB * HV];
  const float* hl = a;
  if constexpr (NL == 1) {  // the linear model: the readout acts on the inputs, copied into aligned, zero-padded rows
    std::memset(a, 0, sizeof(a));
    for (int r = 0; r < RB; ++r) std::memcpy(a + r * HV, x + r * kDims[0], sizeof(float) * kDims[0]);
  } else {
    hl = hidden<0, RB>(p, x, kDims[0], a, c, sw, sb);
  }
  constexpr int IN = kDims[NL - 1], NV = nvec(IN);
  const float* w = p + readout_offset();
  const float bias = w[IN];
  const float alpha = sw / std::sqrt(float(IN));
  vec wv[NV];
#pragma GCC unroll 8
  for (int k = 0; k < NV; ++k) wv[k] = load(w + k * V) * lanes_below(IN, k);
#pragma GCC unroll 8
  for (int r = 0; r < RB; ++r) {
    const vec* hr = reinterpret_cast<const vec*>(hl + r * HV);
    vec dot{};
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) dot += hr[k] * wv[k];
    const float z = alpha * hsum(dot) + sb * bias;
    if ((z > 0.0f) == (y[r] != 0)) continue;  // right sign: ||h|| is not needed
    vec sq{};
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) sq += hr[k] * hr[k];
    if (std::fabs(z) > margin * (sb * std::fabs(bias) + alpha * std::sqrt(hsum(sq)) * w_norm)) return true;
  }
  return false;
}

// true when some input of S (x [n, d], y [n]) has a logit of the wrong sign beyond the margin; inputs are taken two
// at a time, in order, and the first pair that rejects ends the evaluation (with S ordered so that each pair has
// one input of each label, the first pair rejects ~95% of the book's networks)
FUSED inline bool rejects(const float* p, const float* x, const uint8_t* y, int64_t n, float sw, float sb,
                          float margin) {
  constexpr int IN = kDims[NL - 1], NV = nvec(IN);
  const float* w = p + readout_offset();
  vec wsq{};
#pragma GCC unroll 8
  for (int k = 0; k < NV; ++k) {
    const vec wk = load(w + k * V) * lanes_below(IN, k);
    wsq += wk * wk;
  }
  const float wn = std::sqrt(hsum(wsq));
  constexpr int d = kDims[0];
  int64_t s = 0;
  for (; s + 2 <= n; s += 2)
    if (rows_reject<2>(p, x + s * d, y + s, sw, sb, margin, wn)) return true;
  return s < n && rows_reject<1>(p, x + s * d, y + s, sw, sb, margin, wn);
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

// The number of 16-value groups on which box_muller_groups (with AVX-512: the two-group form, whose operations were
// simplified using the range of its inputs) and box_muller16 (the transcription of torch's AVX2 kernel) differ in
// any bit, over every possible input: groups whose eight u1 and eight u2 lanes run through all 2^24 uniforms
// k 2^-24. 0 means the two are the same function.
int64_t sgdb_box_muller_mismatches() {
  constexpr int64_t G = 4096;  // groups per batch
  float* u = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * 16 * G));
  float* a = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * 16 * G));
  if (!u || !a) {
    std::free(u);
    std::free(a);
    return -1;
  }
  int64_t bad = 0;
  for (int64_t g0 = 0; g0 < (int64_t(1) << 24) / 8; g0 += G) {
    for (int64_t g = 0; g < G; ++g)
      for (int j = 0; j < 8; ++j) {
        const float v = float((g0 + g) * 8 + j) * (1.0f / 16777216.0f);
        u[16 * g + j] = v;
        u[16 * g + 8 + j] = v;
      }
    box_muller_groups(u, a, G);
    for (int64_t g = 0; g < G; ++g) {
      float b[16];
      std::memcpy(b, u + 16 * g, sizeof(b));
      box_muller16(b);
      bad += int64_t(std::memcmp(b, a + 16 * g, sizeof(b)) != 0);
    }
  }
  std::free(u);
  std::free(a);
  return bad;
}

// The networks of block `seed` (a stream of block * P normals; only its first n_keep networks are looked at) that
// the filter keeps on S (x_s [n_s, d], y_s [n_s] in {0,1}): their indices in the block into idx (ascending) and their
// raw normals into params [count, P]. Returns the count (<= n_keep), or -1 when memory runs out.
int64_t sgdb_prior_filter(uint64_t seed, int64_t block, int64_t n_keep, const float* x_s, const uint8_t* y_s,
                          int64_t n_s, float sigma_w, float sigma_b, float margin, int64_t* idx, float* params) {
  constexpr int NB = 4;  // networks per slice of the stream: 32 KB, read back from L1
  const size_t bytes = ((sizeof(float) * (NB * P + PAD) + 63) / 64) * 64;
  float* buf = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!buf) return -1;
  std::memset(buf, 0, bytes);
  NormalStream st;
  st.init(seed, block * P);
  int64_t found = 0;
  for (int64_t k0 = 0; k0 < n_keep; k0 += NB) {
    const int nb = int(n_keep - k0 < NB ? n_keep - k0 : NB);
    st.take(buf, int64_t(nb) * P);
    for (int k = 0; k < nb; ++k) {
      const float* p = buf + int64_t(k) * P;
      if (!rejects(p, x_s, y_s, n_s, sigma_w, sigma_b, margin)) {
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
