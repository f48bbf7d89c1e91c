/*
 * deadcheck's compiled counting kernel: per unit, how many positions of an
 * activation are > 0, whether any is NaN and, optionally, how many are >= a cap,
 * in one read of the activation, on torch's own OpenMP threads.
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
} Job;

/*
 * rows_of_unit: rows of `inner` positions of one unit each (unit = row % units),
 * as in NCHW or any unit axis but the innermost; each row is read once, all
 * three counts in the same pass. rows_of_all: rows of `units` positions, one
 * per unit (inner == 1), as in channels-last or features last; the units go
 * in blocks of BLOCK, whose counts stay in registers while the rows stream by.
 */
#define BLOCK 64
#define POSITIVE(v) ((v) > 0)
#define IS_NAN(v) (((v) & mask) > inf)
#define AT_CAP(v) (((v) >= cap) & ((v) <= inf))

#define DEFINE_KERNELS(T, W)                                                             \
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

DEFINE_KERNELS(int16_t, 16)
DEFINE_KERNELS(int32_t, 32)
DEFINE_KERNELS(int64_t, 64)

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
static int have_avx2 = 0;
#endif

static void run(const Job *j, int width) {
    if (j->begin >= j->end) return;
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

static PyObject *count(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError,
                        "count(x, width, outer, units, inner, positive, saturated, cap_bits, "
                        "inf_bits, has_cap, threads) takes 11 arguments");
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
    int64_t rows = inner == 1 ? outer : outer * units;
    if (threads < 1 || outer * units * inner < PARALLEL_MIN) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > rows) threads = rows > 0 ? rows : 1;
    int32_t *partial = calloc((size_t)threads * 3 * (size_t)units, sizeof(int32_t));
    if (!partial) return PyErr_NoMemory();
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
        for (long t = 0; t < threads; t++) {
            p += jobs[t].pos[u];
            s += jobs[t].sat[u];
            n |= jobs[t].nan[u];
        }
        positive[u] += n ? NAN : (float)p;
        if (has_cap) saturated[u] += (float)s;
    }
    Py_END_ALLOW_THREADS
    free(partial);
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
