/* The version-2 bucketing hash in C: what ``bucketing.python_hash_after`` computes, without the interpreter.
 *
 * A decision in an experiment hashes its user id once per experiment and once for the holdout; in Python
 * each hash is a loop of multiply-and-xor steps over the id and then over the first hash's digits, a few
 * microseconds a decision. ``hash_after(state, text)`` continues 32-bit FNV-1a from ``state`` over the UTF-16
 * code units of ``text`` (a character outside the Basic Multilingual Plane as its surrogate pair, as
 * JavaScript's ``charCodeAt`` gives them), then hashes the result's decimal digits from the offset basis and
 * returns ``(second % 10000) / 10000``. The property test holds it to the Python; bucketing.py uses the
 * Python when this module is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>

#define FNV_OFFSET 0x811C9DC5u
#define FNV_PRIME 0x01000193u

static PyObject *hash_after(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyLong_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "hash_after(state: int, text: str)");
        return NULL;
    }
    unsigned long long start = PyLong_AsUnsignedLongLongMask(args[0]);
    if (start == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    uint32_t state = (uint32_t)start;
    PyObject *text = args[1];
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c > 0xFFFF) {
            c -= 0x10000;
            state = (state ^ (0xD800u + (c >> 10))) * FNV_PRIME;
            state = (state ^ (0xDC00u + (c & 0x3FF))) * FNV_PRIME;
        } else {
            state = (state ^ c) * FNV_PRIME;
        }
    }
    char digits[16];
    int n = snprintf(digits, sizeof digits, "%u", (unsigned)state);
    uint32_t second = FNV_OFFSET;
    for (int i = 0; i < n; i++) second = (second ^ (unsigned char)digits[i]) * FNV_PRIME;
    return PyFloat_FromDouble((double)(second % 10000u) / 10000.0);
}

static PyMethodDef methods[] = {
    {"hash_after", (PyCFunction)(void (*)(void))hash_after, METH_FASTCALL,
     "hash_after(state, text) -> the version-2 hash of seed + text, from the seed's FNV-1a state"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "_bucketing", "The version-2 bucketing hash, in C (see bucketing.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__bucketing(void) { return PyModule_Create(&definition); }
