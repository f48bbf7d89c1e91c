/*
 * deadcheck's compiled counting kernel: per unit, how many positions of an
 * activation are > 0, whether any is NaN and, optionally, how many are >= a cap,
 * the sums of its positive and negative parts and its largest value, in one
 * read of the activation, on torch's own OpenMP threads.
 *
 * It reads floats as signed integers of their width: for IEEE floats of any
 * width, x > 0 exactly when the bits, read as a signed integer, are > 0 (-0.0,
 * the negatives and -inf have the sign bit set; denormals and +inf are > 0),
 * and for positive values the integer order is the float order, so x >= cap
 * is bits >= cap_bits for a positive cap. NaN is (bits & ~sign) > inf_bits.
 * Integer compares are exact whatever the FPU's denormal flags say, so the
 * result equals the pure-torch path of deadcheck/counting.py bit for bit.
 *
 * The activation is dense, viewed in memory order as outer x units x inner.
 * Counts are added into float32 windows (the caller keeps every call's
 * positions per unit below 2**24, where float32 integers are exact); a unit
 * that saw a NaN gets NaN added, as the torch path's indicator sum does.
 *
 * Built with -fopenmp, the module links libgomp.so.1, which resolves to the
 * copy torch has already loaded: the parallel region runs on torch's thread
 * pool, whose threads are already awake after the layer that made the output.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* One binary for every x86-64 CPU: gcc and clang pick the widest clone at load time. */
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

#define MAX_THREADS 256
/* Below this many elements a single thread is faster than waking the others. */
#define PARALLEL_MIN (1 << 16)

typedef struct {
    const void *x;
    int64_t units, inner;
    int64_t begin, end; /* rows of this thread */
    int64_t cap_bits, inf_bits;
    int has_cap;
    int32_t *pos, *sat, *nan; /* this thread's per-unit partial counts */
    /* The value statistics, where asked for (extras): per unit, the sum of the
     * positive values clipped at `clip`, the sum of |negative values| and the
     * largest value, into this thread's double partials. */
    int extras, has_neg;
    double clip;
    double *psum, *nsum, *max;
    float *fa, *fb, *fm; /* float scratch per unit (rows of all units) */
} Job;

/*
 * rows_of_unit: rows of `inner` positions of one unit each (unit = row % units),
 * as in NCHW or any unit axis but the innermost; each row is read once, all
 * counts in the same pass. rows_of_all: rows of `units` positions, one per unit
 * (inner == 1), as in channels-last or features last; the units go in blocks
 * of BLOCK, whose counts stay in registers while the rows stream by.
 *
 * The value sums are added in the float type of the data within a piece of at
 * most SUM_PIECE values per lane (vectorised by `omp simd`, which allows the
 * reordering a float reduction needs), then into doubles: float32 data keeps
 * a relative error near 1e-7 per piece, as torch's own float32 sum does.
 */
#define BLOCK 64
#define SUM_PIECE 4096
#define POSITIVE(v) ((v) > 0)
#define IS_NAN(v) (((v) & mask) > inf)
#define AT_CAP(v) (((v) >= cap) & ((v) <= inf))

static inline float as_f32(int32_t v) {
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}
static inline double as_f64(int64_t v) {
    double f;
    memcpy(&f, &v, sizeof f);
    return f;
}

#define DEFINE_COUNTS(T, W)                                                              \
    CLONES static void rows_of_unit_##W(const Job *j) {                                  \
        const T *x = (const T *)j->x;                                                    \
        const T inf = (T)j->inf_bits, cap = (T)j->cap_bits;                              \
        const T mask = (T)((UINT64_C(1) << (W - 1)) - 1);                                \
        const int64_t inner = j->inner, units = j->units;                                \
        int64_t u = j->begin % units;                                                    \
        for (int64_t r = j->begin; r < j->end; r++) {                                    \
            const T *row = x + r * inner;                                                \
            int32_t p = 0, n = 0, s = 0;                                                 \
            if (j->has_cap) {                                                            \
                for (int64_t i = 0; i < inner; i++) {                                    \
                    p += POSITIVE(row[i]);                                               \
                    n |= IS_NAN(row[i]);                                                 \
                    s += AT_CAP(row[i]);                                                 \
                }                                                                        \
            } else {                                                                     \
                for (int64_t i = 0; i < inner; i++) {                                    \
                    p += POSITIVE(row[i]);                                               \
                    n |= IS_NAN(row[i]);                                                 \
                }                                                                        \
            }                                                                            \
            j->pos[u] += p;                                                              \
            j->nan[u] |= n;                                                              \
            j->sat[u] += s;                                                              \
            if (++u == units) u = 0;                                                     \
        }                                                                                \
    }                                                                                    \
    CLONES static void rows_of_all_##W(const Job *j) {                                   \
        const T *x = (const T *)j->x;                                                    \
        const T inf = (T)j->inf_bits, cap = (T)j->cap_bits;                              \
        const T mask = (T)((UINT64_C(1) << (W - 1)) - 1);                                \
        const int64_t units = j->units;                                                  \
        for (int64_t u0 = 0; u0 < units; u0 += BLOCK) {                                  \
            const int64_t w = units - u0 < BLOCK ? units - u0 : BLOCK;                   \
            int32_t p[BLOCK] = {0}, n[BLOCK] = {0}, s[BLOCK] = {0};                      \
            if (w == BLOCK && j->has_cap) {                                              \
                for (int64_t r = j->begin; r < j->end; r++) {                            \
                    const T *row = x + r * units + u0;                                   \
                    for (int i = 0; i < BLOCK; i++) {                                    \
                        p[i] += POSITIVE(row[i]);                                        \
                        n[i] |= IS_NAN(row[i]);                                          \
                        s[i] += AT_CAP(row[i]);                                          \
                    }                                                                    \
                }                                                                        \
            } else if (w == BLOCK) {                                                     \
                for (int64_t r = j->begin; r < j->end; r++) {                            \
                    const T *row = x + r * units + u0;                                   \
                    for (int i = 0; i < BLOCK; i++) {                                    \
                        p[i] += POSITIVE(row[i]);                                        \
                        n[i] |= IS_NAN(row[i]);                                          \
                    }                                                                    \
                }                                                                        \
            } else {                                                                     \
                for (int64_t r = j->begin; r < j->end; r++) {                            \
                    const T *row = x + r * units + u0;                                   \
                    for (int64_t i = 0; i < w; i++) {                                    \
                        p[i] += POSITIVE(row[i]);                                        \
                        n[i] |= IS_NAN(row[i]);                                          \
                        s[i] += j->has_cap & AT_CAP(row[i]);                             \
                    }                                                                    \
                }                                                                        \
            }                                                                            \
            for (int64_t i = 0; i < w; i++) {                                            \
                j->pos[u0 + i] += p[i];                                                  \
                j->nan[u0 + i] |= n[i];                                                  \
                j->sat[u0 + i] += s[i];                                                  \
            }                                                                            \
        }                                                                                \
    }

/*
 * The same reads with the value statistics: per value, besides the counts, its
 * clipped positive part, its negative part's magnitude and the running maximum
 * (NaN never wins a compare; a unit that saw a NaN gets NaN for all three, as
 * the pure-torch path's sums and amax do). Float types F of the width W.
 */
/* Branch-free, so that the loops vectorise: the value masked in the integer
 * domain (+0.0 where the mask is off), then clipped or read as a magnitude. */
#define MASKED(T, AS_F, v, keep) AS_F((v) & -(T)(keep))
#define CLIPPED(T, AS_F, v) \
    (MASKED(T, AS_F, v, POSITIVE(v)) < clip ? MASKED(T, AS_F, v, POSITIVE(v)) : clip)
#define NEGATIVE_PART(T, AS_F, v) AS_F((v) & -(T)((v) < 0) & mask)
#define VALUE_STEP(T, AS_F, v, P, N, S, A, B, M)                                        \
    do {                                                                                 \
        P += POSITIVE(v);                                                                \
        N |= AS_F(v) != AS_F(v);                                                         \
        S += has_cap & AT_CAP(v);                                                        \
        A += has_clip ? CLIPPED(T, AS_F, v) : MASKED(T, AS_F, v, POSITIVE(v));           \
        if (has_neg) B += NEGATIVE_PART(T, AS_F, v);                                     \
        M = AS_F(v) > M ? AS_F(v) : M;                                                   \
    } while (0)

/* LANES independent accumulators per row (float additions have a latency of
 * several cycles: one accumulator would leave the vector units waiting), and
 * BLOCK_X units per block of rows_of_all, so that its accumulators stay in
 * registers. */
#define BLOCK_X 64
/* Tiles of rows of all units: 16 rows, or more rows of few units, up to 32 KB. */
#define TILE 16
#define TILE_BYTES (32 << 10)
#define DEFINE_EXTRAS(T, F, W, AS_F, LANES, NEG, CLIP)                                              \
    CLONES static void rows_of_unit_extras_##W##_##NEG##CLIP(const Job *j) {                           \
        const T *x = (const T *)j->x;                                                    \
        const T inf = (T)j->inf_bits, cap = (T)j->cap_bits;                              \
        const T mask = (T)((UINT64_C(1) << (W - 1)) - 1);                                \
        const int64_t inner = j->inner, units = j->units, whole = inner - inner % LANES; \
        const F clip = (F)j->clip;                                                       \
        const int has_cap = j->has_cap, has_neg = NEG, has_clip = CLIP;                  \
        int64_t u = j->begin % units;                                                    \
        for (int64_t r = j->begin; r < j->end; r++) {                                    \
            const T *row = x + r * inner;                                                \
            int32_t p[LANES] = {0}, n[LANES] = {0}, s[LANES] = {0};                      \
            F m[LANES];                                                                  \
            double ps = 0, ns = 0;                                                       \
            for (int k = 0; k < LANES; k++) m[k] = (F)-INFINITY;                         \
            for (int64_t i0 = 0; i0 < whole; i0 += SUM_PIECE) {                          \
                const int64_t i1 = whole - i0 < SUM_PIECE ? whole : i0 + SUM_PIECE;      \
                F a[LANES] = {0}, b[LANES] = {0};                                        \
                for (int64_t i = i0; i < i1; i += LANES) {                               \
                    _Pragma("omp simd")                                                  \
                    for (int k = 0; k < LANES; k++) {                                    \
                        const T v = row[i + k];                                          \
                        VALUE_STEP(T, AS_F, v, p[k], n[k], s[k], a[k], b[k], m[k]);      \
                    }                                                                    \
                }                                                                        \
                for (int k = 0; k < LANES; k++) {                                        \
                    ps += a[k];                                                          \
                    ns += b[k];                                                          \
                }                                                                        \
            }                                                                            \
            F a = 0, b = 0;                                                              \
            for (int64_t i = whole; i < inner; i++) {                                    \
                const T v = row[i];                                                      \
                VALUE_STEP(T, AS_F, v, p[0], n[0], s[0], a, b, m[0]);                    \
            }                                                                            \
            ps += a;                                                                     \
            ns += b;                                                                     \
            int32_t pt = 0, nt = 0, st = 0;                                              \
            F mt = (F)-INFINITY;                                                         \
            for (int k = 0; k < LANES; k++) {                                            \
                pt += p[k];                                                              \
                nt |= n[k];                                                              \
                st += s[k];                                                              \
                mt = m[k] > mt ? m[k] : mt;                                              \
            }                                                                            \
            j->pos[u] += pt;                                                             \
            j->nan[u] |= nt;                                                             \
            j->sat[u] += st;                                                             \
            j->psum[u] += ps;                                                            \
            j->nsum[u] += ns;                                                            \
            if ((double)mt > j->max[u]) j->max[u] = (double)mt;                          \
            if (++u == units) u = 0;                                                     \
        }                                                                                \
    }                                                                                    \
    CLONES static void rows_of_all_extras_##W##_##NEG##CLIP(const Job *j) {                            \
        const T *x = (const T *)j->x;                                                    \
        const T inf = (T)j->inf_bits, cap = (T)j->cap_bits;                              \
        const T mask = (T)((UINT64_C(1) << (W - 1)) - 1);                                \
        const int64_t units = j->units;                                                  \
        const F clip = (F)j->clip;                                                       \
        const int has_cap = j->has_cap, has_neg = NEG, has_clip = CLIP;                  \
        for (int64_t u0 = 0; u0 < units; u0 += BLOCK_X) {                                \
            const int64_t w = units - u0 < BLOCK_X ? units - u0 : BLOCK_X;               \
            int32_t p[BLOCK_X] = {0}, n[BLOCK_X] = {0}, s[BLOCK_X] = {0};                \
            double ps[BLOCK_X] = {0}, ns[BLOCK_X] = {0};                                 \
            F m[BLOCK_X];                                                                \
            for (int i = 0; i < BLOCK_X; i++) m[i] = (F)-INFINITY;                       \
            for (int64_t r0 = j->begin; r0 < j->end; r0 += SUM_PIECE / 16) {             \
                const int64_t r1 =                                                       \
                    j->end - r0 < SUM_PIECE / 16 ? j->end : r0 + SUM_PIECE / 16;         \
                F a[BLOCK_X] = {0}, b[BLOCK_X] = {0};                                    \
                if (w == BLOCK_X) {                                                      \
                    for (int64_t r = r0; r < r1; r++) {                                  \
                        const T *row = x + r * units + u0;                               \
                        _Pragma("omp simd")                                              \
                        for (int i = 0; i < BLOCK_X; i++) {                              \
                            const T v = row[i];                                          \
                            VALUE_STEP(T, AS_F, v, p[i], n[i], s[i], a[i], b[i], m[i]);  \
                        }                                                                \
                    }                                                                    \
                } else {                                                                 \
                    for (int64_t r = r0; r < r1; r++) {                                  \
                        const T *row = x + r * units + u0;                               \
                        for (int64_t i = 0; i < w; i++) {                                \
                            const T v = row[i];                                          \
                            VALUE_STEP(T, AS_F, v, p[i], n[i], s[i], a[i], b[i], m[i]);  \
                        }                                                                \
                    }                                                                    \
                }                                                                        \
                for (int64_t i = 0; i < w; i++) {                                        \
                    ps[i] += a[i];                                                       \
                    ns[i] += b[i];                                                       \
                }                                                                        \
            }                                                                            \
            for (int64_t i = 0; i < w; i++) {                                            \
                j->pos[u0 + i] += p[i];                                                  \
                j->nan[u0 + i] |= n[i];                                                  \
                j->sat[u0 + i] += s[i];                                                  \
                j->psum[u0 + i] += ps[i];                                                \
                j->nsum[u0 + i] += ns[i];                                                \
                if ((double)m[i] > j->max[u0 + i]) j->max[u0 + i] = (double)m[i];        \
            }                                                                            \
        }                                                                                \
    }

DEFINE_COUNTS(int16_t, 16)
DEFINE_COUNTS(int32_t, 32)
DEFINE_COUNTS(int64_t, 64)
#define DEFINE_ALL_EXTRAS(T, F, W, AS_F, LANES)                                           \
    DEFINE_EXTRAS(T, F, W, AS_F, LANES, 0, 0)                                            \
    DEFINE_EXTRAS(T, F, W, AS_F, LANES, 0, 1)                                            \
    DEFINE_EXTRAS(T, F, W, AS_F, LANES, 1, 0)                                            \
    DEFINE_EXTRAS(T, F, W, AS_F, LANES, 1, 1)                                            \
    static void rows_of_unit_extras_##W(const Job *j) {                                  \
        static void (*const variants[4])(const Job *) = {                                \
            rows_of_unit_extras_##W##_00, rows_of_unit_extras_##W##_01,                  \
            rows_of_unit_extras_##W##_10, rows_of_unit_extras_##W##_11};                 \
        variants[(j->has_neg ? 2 : 0) | (j->clip < INFINITY ? 1 : 0)](j);                \
    }                                                                                    \
    static void rows_of_all_extras_##W(const Job *j) {                                   \
        static void (*const variants[4])(const Job *) = {                                \
            rows_of_all_extras_##W##_00, rows_of_all_extras_##W##_01,                    \
            rows_of_all_extras_##W##_10, rows_of_all_extras_##W##_11};                   \
        variants[(j->has_neg ? 2 : 0) | (j->clip < INFINITY ? 1 : 0)](j);                \
    }

DEFINE_ALL_EXTRAS(int32_t, float, 32, as_f32, 32)
DEFINE_ALL_EXTRAS(int64_t, double, 64, as_f64, 16)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_SHORT_ROWS 1
/*
 * Short rows of float32 (inner < SHORT): the vectorised loop above spends most
 * of a 25-position row (a 5x5 feature map) in its remainder. Here eight
 * positions at a time become a bit mask whose popcount is the count, and the
 * row's last positions are read with a masked load (masked lanes read as 0,
 * which is neither positive, NaN nor at a positive cap).
 */
#define SHORT 256
__attribute__((target("avx2,popcnt"))) static void short_rows_32(const Job *j) {
    const int32_t *x = (const int32_t *)j->x;
    const int64_t inner = j->inner, units = j->units, full = inner & ~(int64_t)7;
    const __m256i zero = _mm256_setzero_si256();
    const __m256i inf = _mm256_set1_epi32((int32_t)j->inf_bits);
    const __m256i below_cap = _mm256_set1_epi32((int32_t)(j->cap_bits - 1));
    const __m256i magnitude = _mm256_set1_epi32(0x7fffffff);
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)(inner - full)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const int has_cap = j->has_cap;
    int64_t u = j->begin % units;
    for (int64_t r = j->begin; r < j->end; r++) {
        const int32_t *row = x + r * inner;
        int32_t p = 0, s = 0;
        __m256i nan = zero;
        for (int64_t i = 0; i <= full; i += 8) {
            __m256i v = i < full ? _mm256_loadu_si256((const __m256i *)(row + i))
                                 : _mm256_maskload_epi32(row + i, tail);
            p += __builtin_popcount(
                (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(v, zero))));
            nan = _mm256_or_si256(nan, _mm256_cmpgt_epi32(_mm256_and_si256(v, magnitude), inf));
            if (has_cap) {
                __m256i high = _mm256_andnot_si256(_mm256_cmpgt_epi32(v, inf),
                                                   _mm256_cmpgt_epi32(v, below_cap));
                s += __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(high)));
            }
        }
        j->pos[u] += p;
        j->nan[u] |= !_mm256_testz_si256(nan, nan);
        j->sat[u] += s;
        if (++u == units) u = 0;
    }
}

__attribute__((target("avx2"))) static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}
__attribute__((target("avx2"))) static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps(s, s, 1)));
}
/* float32 rows of one unit with the value statistics, 16 values a step in two
 * independent sets of accumulators (a float addition's latency would otherwise
 * leave the vector units waiting), the row's last values read with a masked
 * load; masked-off lanes read 0, which adds nothing to either sum and is kept
 * out of the maximum. Sums go into doubles every SUM_PIECE values. Each step
 * does only what the call asks for: the flags are constants in each of the
 * specialised copies `rows_extras_32` dispatches to. */
typedef struct {
    __m256i pos, sat;
    __m256 nan, a, b, m;
} Lanes;

#define ALWAYS static inline __attribute__((always_inline, target("avx2")))

ALWAYS void lanes_step(Lanes *l, __m256i v, int tail, __m256i valid, __m256i inf,
                       __m256i cap_at, __m256 clip, int has_cap, int has_neg, int has_clip) {
    (void)inf; /* the float compares below exclude NaN themselves */
    const __m256i zero = _mm256_setzero_si256();
    const __m256 f = _mm256_castsi256_ps(v);
    const __m256i pos = _mm256_cmpgt_epi32(v, zero);
    l->pos = _mm256_sub_epi32(l->pos, pos);
    l->nan = _mm256_or_ps(l->nan, _mm256_cmp_ps(f, f, _CMP_UNORD_Q));
    /* x >= cap as a float compare: ordered, so NaN is never at the cap, and exact for a
     * normal positive cap whatever the denormal flags (run() sends smaller caps to the
     * integer loops); one compare where the integer range test took three */
    if (has_cap)
        l->sat = _mm256_sub_epi32(
            l->sat, _mm256_castps_si256(_mm256_cmp_ps(f, _mm256_castsi256_ps(cap_at), _CMP_GE_OQ)));
    __m256 kept = _mm256_and_ps(_mm256_castsi256_ps(pos), f);
    if (has_clip) kept = _mm256_min_ps(kept, clip);
    l->a = _mm256_add_ps(l->a, kept);
    if (has_neg)
        l->b = _mm256_add_ps(
            l->b,
            _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(zero, v)),
                          _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(0x7fffffff)))));
    /* max_ps returns its second operand when the first is NaN (NaN is found apart) */
    l->m = _mm256_max_ps(
        tail ? _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), f, _mm256_castsi256_ps(valid)) : f,
        l->m);
}

__attribute__((target("avx2"))) static inline int32_t hadd8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1)));
}

ALWAYS void rows_extras_32_body(const Job *j, int has_cap, int has_neg, int has_clip) {
    const int32_t *x = (const int32_t *)j->x;
    const int64_t inner = j->inner, units = j->units, full = inner & ~(int64_t)7;
    const __m256i inf = _mm256_set1_epi32((int32_t)j->inf_bits);
    const __m256i cap_at = _mm256_set1_epi32((int32_t)j->cap_bits);
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)(inner - full)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i all = _mm256_set1_epi32(-1);
    const __m256 clip = _mm256_set1_ps((float)j->clip);
    int64_t u = j->begin % units;
    for (int64_t r = j->begin; r < j->end; r++) {
        const int32_t *row = x + r * inner;
        Lanes l[2];
        for (int k = 0; k < 2; k++) {
            l[k].pos = l[k].sat = _mm256_setzero_si256();
            l[k].nan = l[k].a = l[k].b = _mm256_setzero_ps();
            l[k].m = _mm256_set1_ps(-INFINITY);
        }
        double ps = 0, ns = 0;
        int64_t i = 0;
        while (i + 16 <= full) {
            const int64_t stop = full - i > SUM_PIECE ? i + SUM_PIECE : full;
            for (; i + 16 <= stop; i += 16) {
                lanes_step(&l[0], _mm256_loadu_si256((const __m256i *)(row + i)), 0, all, inf,
                           cap_at, clip, has_cap, has_neg, has_clip);
                lanes_step(&l[1], _mm256_loadu_si256((const __m256i *)(row + i + 8)), 0, all,
                           inf, cap_at, clip, has_cap, has_neg, has_clip);
            }
            ps += (double)hsum8(l[0].a) + (double)hsum8(l[1].a);
            l[0].a = l[1].a = _mm256_setzero_ps();
            if (has_neg) {
                ns += (double)hsum8(l[0].b) + (double)hsum8(l[1].b);
                l[0].b = l[1].b = _mm256_setzero_ps();
            }
        }
        for (; i < full; i += 8)
            lanes_step(&l[0], _mm256_loadu_si256((const __m256i *)(row + i)), 0, all, inf,
                       cap_at, clip, has_cap, has_neg, has_clip);
        if (full < inner)
            lanes_step(&l[0], _mm256_maskload_epi32(row + full, tail), 1, tail, inf, cap_at,
                       clip, has_cap, has_neg, has_clip);
        ps += (double)hsum8(l[0].a);
        if (has_neg) ns += (double)hsum8(l[0].b);
        const __m256 nan = _mm256_or_ps(l[0].nan, l[1].nan);
        j->pos[u] += hadd8i(_mm256_add_epi32(l[0].pos, l[1].pos));
        j->nan[u] |= !_mm256_testz_ps(nan, nan);
        if (has_cap) j->sat[u] += hadd8i(_mm256_add_epi32(l[0].sat, l[1].sat));
        j->psum[u] += ps;
        j->nsum[u] += ns;
        const double top = hmax8(_mm256_max_ps(l[0].m, l[1].m));
        if (top > j->max[u]) j->max[u] = top;
        if (++u == units) u = 0;
    }
}

/* Rows of all units (features last), 16 units a block in two vectors whose
 * accumulators stay in registers while the rows stream by. */
ALWAYS void all_extras_32_body(const Job *j, int has_cap, int has_neg, int has_clip) {
    const int32_t *x = (const int32_t *)j->x;
    const int64_t units = j->units;
    const __m256i inf = _mm256_set1_epi32((int32_t)j->inf_bits);
    const __m256i cap_at = _mm256_set1_epi32((int32_t)j->cap_bits);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 clip = _mm256_set1_ps((float)j->clip);
    float *fa = j->fa, *fb = j->fb, *fm = j->fm;
    for (int64_t u = 0; u < units; u++) {
        fa[u] = fb[u] = 0;
        fm[u] = -INFINITY;
    }
    /* Tiles of TILE rows read in blocks of 16 units: few enough rows that the
     * hardware prefetcher follows each of them, the block's accumulators in
     * registers within a tile and in the thread's float arrays between tiles,
     * the sums moved into doubles every SUM_PIECE / 16 rows. */
    int64_t since = 0;
    const int64_t tile = units >= TILE_BYTES / (4 * TILE) ? TILE : TILE_BYTES / (4 * units);
    for (int64_t r0 = j->begin; r0 < j->end; r0 += tile) {
        const int64_t r1 = j->end - r0 < tile ? j->end : r0 + tile;
        for (int64_t u0 = 0; u0 < units; u0 += 16) {
            const int64_t w = units - u0 < 16 ? units - u0 : 16;
            const __m256i valid0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)w), lane);
            const __m256i valid1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)(w - 8)), lane);
            Lanes l[2];
            for (int k = 0; k < 2; k++) {
                l[k].pos = l[k].sat = _mm256_setzero_si256();
                l[k].nan = l[k].a = l[k].b = _mm256_setzero_ps();
                l[k].m = _mm256_set1_ps(-INFINITY);
            }
            if (w == 16) {
                for (int64_t r = r0; r < r1; r++) {
                    const int32_t *row = x + r * units + u0;
                    lanes_step(&l[0], _mm256_loadu_si256((const __m256i *)row), 0, valid0, inf,
                               cap_at, clip, has_cap, has_neg, has_clip);
                    lanes_step(&l[1], _mm256_loadu_si256((const __m256i *)(row + 8)), 0, valid1,
                               inf, cap_at, clip, has_cap, has_neg, has_clip);
                }
                for (int k = 0; k < 2; k++) {
                    const int64_t at = u0 + 8 * k;
                    __m256i *pos = (__m256i *)(j->pos + at), *nan = (__m256i *)(j->nan + at);
                    _mm256_storeu_si256(pos, _mm256_add_epi32(_mm256_loadu_si256(pos), l[k].pos));
                    _mm256_storeu_si256(nan, _mm256_or_si256(_mm256_loadu_si256(nan),
                                                             _mm256_castps_si256(l[k].nan)));
                    if (has_cap) {
                        __m256i *sat = (__m256i *)(j->sat + at);
                        _mm256_storeu_si256(sat,
                                            _mm256_add_epi32(_mm256_loadu_si256(sat), l[k].sat));
                    }
                    _mm256_storeu_ps(fa + at, _mm256_add_ps(_mm256_loadu_ps(fa + at), l[k].a));
                    if (has_neg)
                        _mm256_storeu_ps(fb + at, _mm256_add_ps(_mm256_loadu_ps(fb + at), l[k].b));
                    _mm256_storeu_ps(fm + at, _mm256_max_ps(l[k].m, _mm256_loadu_ps(fm + at)));
                }
            } else {
                for (int64_t r = r0; r < r1; r++) {
                    const int32_t *row = x + r * units + u0;
                    lanes_step(&l[0], _mm256_maskload_epi32(row, valid0), 1, valid0, inf,
                               cap_at, clip, has_cap, has_neg, has_clip);
                    if (w > 8)
                        lanes_step(&l[1], _mm256_maskload_epi32(row + 8, valid1), 1, valid1, inf,
                                   cap_at, clip, has_cap, has_neg, has_clip);
                }
                int32_t pos[16], sat[16], nan[16];
                float a[16], b[16], top[16];
                for (int k = 0; k < 2; k++) {
                    _mm256_storeu_si256((__m256i *)(pos + 8 * k), l[k].pos);
                    _mm256_storeu_si256((__m256i *)(sat + 8 * k), l[k].sat);
                    _mm256_storeu_si256((__m256i *)(nan + 8 * k), _mm256_castps_si256(l[k].nan));
                    _mm256_storeu_ps(a + 8 * k, l[k].a);
                    _mm256_storeu_ps(b + 8 * k, l[k].b);
                    _mm256_storeu_ps(top + 8 * k, l[k].m);
                }
                for (int64_t i = 0; i < w; i++) {
                    j->pos[u0 + i] += pos[i];
                    j->nan[u0 + i] |= nan[i] != 0;
                    j->sat[u0 + i] += sat[i];
                    fa[u0 + i] += a[i];
                    fb[u0 + i] += b[i];
                    if (top[i] > fm[u0 + i]) fm[u0 + i] = top[i];
                }
            }
        }
        since += r1 - r0;
        if (since >= SUM_PIECE / 16 || r1 == j->end) {
            for (int64_t u = 0; u < units; u++) {
                j->psum[u] += fa[u];
                j->nsum[u] += fb[u];
                fa[u] = fb[u] = 0;
            }
            since = 0;
        }
    }
    for (int64_t u = 0; u < units; u++) {
        j->nan[u] = j->nan[u] != 0;
        if ((double)fm[u] > j->max[u]) j->max[u] = (double)fm[u];
    }
}

/* Short float32 rows (a 5x5 or 10x10 map): unit by unit over the thread's
 * rows, so that the horizontal sums run once per unit rather than once per
 * row; rows alternate between two sets of accumulators. */
ALWAYS void short_extras_32_body(const Job *j, int has_cap, int has_neg, int has_clip) {
    const int32_t *x = (const int32_t *)j->x;
    const int64_t inner = j->inner, units = j->units, full = inner & ~(int64_t)7;
    const __m256i inf = _mm256_set1_epi32((int32_t)j->inf_bits);
    const __m256i cap_at = _mm256_set1_epi32((int32_t)j->cap_bits);
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)(inner - full)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i all = _mm256_set1_epi32(-1);
    const __m256 clip = _mm256_set1_ps((float)j->clip);
    for (int64_t u = 0; u < units; u++) {
        const int64_t first = j->begin + ((u - j->begin % units) % units + units) % units;
        if (first >= j->end) continue;
        Lanes l[2];
        for (int k = 0; k < 2; k++) {
            l[k].pos = l[k].sat = _mm256_setzero_si256();
            l[k].nan = l[k].a = l[k].b = _mm256_setzero_ps();
            l[k].m = _mm256_set1_ps(-INFINITY);
        }
        double ps = 0, ns = 0;
        int64_t since = 0;
        int side = 0;
        for (int64_t r = first; r < j->end; r += units) {
            const int32_t *row = x + r * inner;
            Lanes *on = &l[side];
            side ^= 1;
            for (int64_t i = 0; i < full; i += 8)
                lanes_step(on, _mm256_loadu_si256((const __m256i *)(row + i)), 0, all, inf,
                           cap_at, clip, has_cap, has_neg, has_clip);
            if (full < inner)
                lanes_step(on, _mm256_maskload_epi32(row + full, tail), 1, tail, inf, cap_at,
                           clip, has_cap, has_neg, has_clip);
            if ((since += inner) >= SUM_PIECE) {
                ps += (double)hsum8(_mm256_add_ps(l[0].a, l[1].a));
                l[0].a = l[1].a = _mm256_setzero_ps();
                if (has_neg) {
                    ns += (double)hsum8(_mm256_add_ps(l[0].b, l[1].b));
                    l[0].b = l[1].b = _mm256_setzero_ps();
                }
                since = 0;
            }
        }
        ps += (double)hsum8(_mm256_add_ps(l[0].a, l[1].a));
        if (has_neg) ns += (double)hsum8(_mm256_add_ps(l[0].b, l[1].b));
        const __m256 nan = _mm256_or_ps(l[0].nan, l[1].nan);
        j->pos[u] += hadd8i(_mm256_add_epi32(l[0].pos, l[1].pos));
        j->nan[u] |= !_mm256_testz_ps(nan, nan);
        if (has_cap) j->sat[u] += hadd8i(_mm256_add_epi32(l[0].sat, l[1].sat));
        j->psum[u] += ps;
        j->nsum[u] += ns;
        const double top = hmax8(_mm256_max_ps(l[0].m, l[1].m));
        if (top > j->max[u]) j->max[u] = top;
    }
}

#define EXTRAS_32(C, N, K)                                                               \
    __attribute__((target("avx2,popcnt"))) static void rows_extras_32_##C##N##K(const Job *j) { \
        if (j->inner < SHORT) short_extras_32_body(j, C, N, K);                          \
        else rows_extras_32_body(j, C, N, K);                                            \
    }                                                                                    \
    __attribute__((target("avx2,popcnt"))) static void all_extras_32_##C##N##K(const Job *j) {  \
        all_extras_32_body(j, C, N, K);                                                  \
    }
EXTRAS_32(0, 0, 0)
EXTRAS_32(0, 0, 1)
EXTRAS_32(0, 1, 0)
EXTRAS_32(0, 1, 1)
EXTRAS_32(1, 0, 0)
EXTRAS_32(1, 0, 1)
EXTRAS_32(1, 1, 0)
EXTRAS_32(1, 1, 1)

static void rows_extras_32(const Job *j) {
    static void (*const variants[8])(const Job *) = {
        rows_extras_32_000, rows_extras_32_001, rows_extras_32_010, rows_extras_32_011,
        rows_extras_32_100, rows_extras_32_101, rows_extras_32_110, rows_extras_32_111,
    };
    variants[(j->has_cap ? 4 : 0) | (j->has_neg ? 2 : 0) | (j->clip < INFINITY ? 1 : 0)](j);
}

static void all_extras_32(const Job *j) {
    static void (*const variants[8])(const Job *) = {
        all_extras_32_000, all_extras_32_001, all_extras_32_010, all_extras_32_011,
        all_extras_32_100, all_extras_32_101, all_extras_32_110, all_extras_32_111,
    };
    variants[(j->has_cap ? 4 : 0) | (j->has_neg ? 2 : 0) | (j->clip < INFINITY ? 1 : 0)](j);
}
static int have_avx2 = 0;

/* Whether the AVX2 value loops may compare with the cap as a float: no cap, or a
 * normal one (a denormal cap would compare as 0 under denormals-are-zero). */
static inline int float_cap(const Job *j) { return !j->has_cap || j->cap_bits >= 0x00800000; }
#endif

static void run(const Job *j, int width) {
    if (j->begin >= j->end) return;
    if (j->extras) { /* widths 4 and 8: count() refuses extras for 2 */
        if (j->inner == 1) {
#ifdef HAVE_SHORT_ROWS
            if (width == 4 && have_avx2 && float_cap(j)) {
                all_extras_32(j);
                return;
            }
#endif
            if (width == 4) rows_of_all_extras_32(j);
            else rows_of_all_extras_64(j);
            return;
        }
#ifdef HAVE_SHORT_ROWS
        if (width == 4 && have_avx2 && float_cap(j)) {
            rows_extras_32(j);
            return;
        }
#endif
        if (width == 4) rows_of_unit_extras_32(j);
        else rows_of_unit_extras_64(j);
        return;
    }
    if (j->inner == 1) {
        if (width == 2) rows_of_all_16(j);
        else if (width == 4) rows_of_all_32(j);
        else rows_of_all_64(j);
    } else {
#ifdef HAVE_SHORT_ROWS
        if (width == 4 && j->inner < SHORT && have_avx2) {
            short_rows_32(j);
            return;
        }
#endif
        if (width == 2) rows_of_unit_16(j);
        else if (width == 4) rows_of_unit_32(j);
        else rows_of_unit_64(j);
    }
}

/*
 * count(x, width, outer, units, inner, positive, saturated, cap_bits, inf_bits,
 *       has_cap, threads[, sums, clip, neg_weight, neg_weights, neg_stride, maxes])
 *
 * The six optional arguments ask for the value statistics: `sums` (float64 per
 * unit, or 0) gets each unit's sum of min(x, clip) over x > 0 plus w times its
 * sum of |x| over x < 0, where w is |neg_weights[u * neg_stride]| (float32) if
 * given, else neg_weight; `maxes` (float64 per unit, or 0) becomes the larger
 * of itself and each unit's largest value. A unit that saw a NaN gets NaN in both.
 */
static PyObject *count(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 11 && nargs != 17) {
        PyErr_SetString(PyExc_TypeError,
                        "count(x, width, outer, units, inner, positive, saturated, cap_bits, "
                        "inf_bits, has_cap, threads[, sums, clip, neg_weight, neg_weights, "
                        "neg_stride, maxes]) takes 11 or 17 arguments");
        return NULL;
    }
    void *x = PyLong_AsVoidPtr(args[0]);
    long width = PyLong_AsLong(args[1]);
    int64_t outer = PyLong_AsLongLong(args[2]), units = PyLong_AsLongLong(args[3]);
    int64_t inner = PyLong_AsLongLong(args[4]);
    float *positive = (float *)PyLong_AsVoidPtr(args[5]);
    float *saturated = (float *)PyLong_AsVoidPtr(args[6]);
    int64_t cap_bits = PyLong_AsLongLong(args[7]), inf_bits = PyLong_AsLongLong(args[8]);
    int has_cap = PyObject_IsTrue(args[9]);
    long threads = PyLong_AsLong(args[10]);
    double *sums = NULL, *maxes = NULL;
    const float *neg_weights = NULL;
    double clip = INFINITY, neg_weight = 0;
    int64_t neg_stride = 0;
    if (nargs == 17) {
        sums = (double *)PyLong_AsVoidPtr(args[11]);
        clip = PyFloat_AsDouble(args[12]);
        neg_weight = PyFloat_AsDouble(args[13]);
        neg_weights = (const float *)PyLong_AsVoidPtr(args[14]);
        neg_stride = PyLong_AsLongLong(args[15]);
        maxes = (double *)PyLong_AsVoidPtr(args[16]);
    }
    if (PyErr_Occurred()) return NULL;
    if (width != 2 && width != 4 && width != 8) {
        PyErr_SetString(PyExc_ValueError, "width must be 2, 4 or 8 bytes");
        return NULL;
    }
    if (outer < 0 || units < 1 || inner < 1 || outer * inner >= ((int64_t)1 << 31)) {
        PyErr_SetString(PyExc_ValueError, "need units >= 1, inner >= 1 and outer * inner < 2**31");
        return NULL;
    }
    if (has_cap && !saturated) {
        PyErr_SetString(PyExc_ValueError, "a cap needs a saturated window");
        return NULL;
    }
    const int extras = sums != NULL || maxes != NULL;
    if (extras && width == 2) {
        PyErr_SetString(PyExc_ValueError, "sums and maxima need 4- or 8-byte floats");
        return NULL;
    }
    if (neg_stride != 0 && neg_stride != 1) {
        PyErr_SetString(PyExc_ValueError, "neg_stride must be 0 or 1");
        return NULL;
    }
    int64_t rows = inner == 1 ? outer : outer * units;
    if (threads < 1 || outer * units * inner < PARALLEL_MIN) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > rows) threads = rows > 0 ? rows : 1;
    int32_t *partial = calloc((size_t)threads * 3 * (size_t)units, sizeof(int32_t));
    double *values = extras ? malloc((size_t)threads * 3 * (size_t)units * sizeof(double)) : NULL;
    float *scratch = extras ? malloc((size_t)threads * 3 * (size_t)units * sizeof(float)) : NULL;
    if (!partial || (extras && (!values || !scratch))) {
        free(partial);
        free(values);
        free(scratch);
        return PyErr_NoMemory();
    }
    if (values) {
        for (long t = 0; t < threads; t++) {
            double *v = values + (size_t)t * 3 * units;
            for (int64_t u = 0; u < 2 * units; u++) v[u] = 0.0;
            for (int64_t u = 2 * units; u < 3 * units; u++) v[u] = -INFINITY;
        }
    }
    Job jobs[MAX_THREADS];
    for (long t = 0; t < threads; t++) {
        Job *j = &jobs[t];
        j->x = x;
        j->units = units;
        j->inner = inner;
        j->begin = rows * t / threads;
        j->end = rows * (t + 1) / threads;
        j->cap_bits = cap_bits;
        j->inf_bits = inf_bits;
        j->has_cap = has_cap;
        j->pos = partial + (size_t)t * 3 * units;
        j->nan = j->pos + units;
        j->sat = j->nan + units;
        j->extras = extras;
        j->has_neg = sums != NULL && (neg_weights != NULL || neg_weight != 0);
        j->clip = clip;
        j->psum = values ? values + (size_t)t * 3 * units : NULL;
        j->nsum = values ? j->psum + units : NULL;
        j->max = values ? j->nsum + units : NULL;
        j->fa = scratch ? scratch + (size_t)t * 3 * units : NULL;
        j->fb = scratch ? j->fa + units : NULL;
        j->fm = scratch ? j->fb + units : NULL;
    }
    Py_BEGIN_ALLOW_THREADS
#ifdef _OPENMP
    if (threads > 1) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
        for (long t = 0; t < threads; t++) run(&jobs[t], (int)width);
    } else
#endif
    {
        for (long t = 0; t < threads; t++) run(&jobs[t], (int)width);
    }
    for (int64_t u = 0; u < units; u++) {
        int64_t p = 0, s = 0;
        int32_t n = 0;
        double ps = 0, ns = 0, mx = -INFINITY;
        for (long t = 0; t < threads; t++) {
            p += jobs[t].pos[u];
            s += jobs[t].sat[u];
            n |= jobs[t].nan[u];
            if (extras) {
                ps += jobs[t].psum[u];
                ns += jobs[t].nsum[u];
                if (jobs[t].max[u] > mx) mx = jobs[t].max[u];
            }
        }
        positive[u] += n ? NAN : (float)p;
        if (has_cap) saturated[u] += (float)s;
        if (sums) {
            const double w = neg_weights ? fabs((double)neg_weights[u * neg_stride]) : neg_weight;
            sums[u] += n ? NAN : (neg_weights || w != 0 ? ps + w * ns : ps);
        }
        if (maxes) {
            if (n) maxes[u] = NAN;
            else if (mx > maxes[u]) maxes[u] = mx;
        }
    }
    Py_END_ALLOW_THREADS
    free(partial);
    free(values);
    free(scratch);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"count", (PyCFunction)(void (*)(void))count, METH_FASTCALL,
     "Add per-unit counts of one dense activation into float32 windows."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_countkernel",
    "deadcheck's compiled counting kernel (see deadcheck/kernel.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__countkernel(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
#ifdef HAVE_SHORT_ROWS
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
#endif
#ifdef _OPENMP
    PyModule_AddIntConstant(m, "OPENMP", 1);
#else
    PyModule_AddIntConstant(m, "OPENMP", 0);
#endif
    return m;
}
