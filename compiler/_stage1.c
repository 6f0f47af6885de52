/* Stage 1 of a decision plan in C: each store feature's table applied to the candidate set.
 *
 * The generated stage1 spends most of its time in the interpreter, some ten bytecodes per
 * feature around one lookup and one AND. This loop does the same lookups and ANDs on the
 * same Python objects with none of that overhead. It computes exactly what the generated
 * stage1 computes (stage1_native.py builds its tables from the plan; the property test
 * holds the two to the same answers), and stage1_native.py falls back to the generated
 * code when this module is not built.
 *
 * A table is a tuple (key, absent, kind, by_value, small, cuts, regions, other, unknown):
 *   key       the feature's text in ``fetched``; absent: its value when missing (0 or None)
 *   kind      0: a string, 1: a bool, 2: anything but None (looked up in by_value, else other);
 *             3: a number (int but not bool, or float but not NaN)
 *   by_value  dict: a known categorical value -> the candidates it keeps
 *   small     tuple: the candidates an int 0 <= n < len(small) keeps
 *   cuts, regions  a number's candidates: regions[2i + 1] at cuts[i], regions[2i] below it
 *   unknown   the candidates a value of the wrong type (or absent, or NaN) keeps
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

enum { KIND_STRING = 0, KIND_BOOL = 1, KIND_ANY = 2, KIND_NUMBER = 3 };

/* cut < value (op Py_LT) or cut == value (Py_EQ): 1, 0, or -1 with an exception set. A float cut and
 * a float value, or an int value a double holds exactly, compare as doubles (as Python compares them). */
static int compare(PyObject *cut, PyObject *value, double d, int exact, int op) {
    if (exact && PyFloat_CheckExact(cut)) {
        double c = PyFloat_AS_DOUBLE(cut);
        return op == Py_LT ? c < d : c == d;
    }
    return PyObject_RichCompareBool(cut, value, op);
}

/* The region of a number (as bisect_left finds it): a borrowed reference, or NULL with an exception set. */
static PyObject *region(PyObject *cuts, PyObject *regions, PyObject *value, double d, int exact) {
    Py_ssize_t lo = 0, hi = PyTuple_GET_SIZE(cuts);
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        int less = compare(PyTuple_GET_ITEM(cuts, mid), value, d, exact, Py_LT);
        if (less < 0) return NULL;
        if (less) lo = mid + 1;
        else hi = mid;
    }
    if (lo < PyTuple_GET_SIZE(cuts)) {
        int equal = compare(PyTuple_GET_ITEM(cuts, lo), value, d, exact, Py_EQ);
        if (equal < 0) return NULL;
        if (equal) return PyTuple_GET_ITEM(regions, 2 * lo + 1);
    }
    return PyTuple_GET_ITEM(regions, 2 * lo);
}

#define EXACT_DOUBLE (1L << 53) /* every int of at most this magnitude is a double exactly */

/* The candidates one table keeps for ``value``: a borrowed reference, or NULL with an exception set. */
static PyObject *keep(PyObject *table, PyObject *value) {
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(table, 2));
    PyObject *unknown = PyTuple_GET_ITEM(table, 8);
    if (kind == KIND_NUMBER) {
        PyObject *regions = PyTuple_GET_ITEM(table, 6);
        double d = 0.0;
        int exact = 0;
        if (PyLong_CheckExact(value)) {
            PyObject *small = PyTuple_GET_ITEM(table, 4);
            Py_ssize_t count = PyTuple_GET_SIZE(small);
            int overflow = 0;
            long n = PyLong_AsLongAndOverflow(value, &overflow);
            if (n == -1 && !overflow && PyErr_Occurred()) return NULL;
            if (!overflow && n >= 0 && n < count) return PyTuple_GET_ITEM(small, n);
            /* small runs one past the largest cut: a larger int is above every cut */
            if (count && (overflow > 0 || n >= count)) return PyTuple_GET_ITEM(regions, PyTuple_GET_SIZE(regions) - 1);
            exact = !overflow && n <= EXACT_DOUBLE && n >= -EXACT_DOUBLE;
            d = (double)n;
        } else if (PyFloat_CheckExact(value)) {
            d = PyFloat_AS_DOUBLE(value);
            if (d != d) return unknown;
            exact = 1;
        } else {
            return unknown;
        }
        return region(PyTuple_GET_ITEM(table, 5), regions, value, d, exact);
    }
    int known = kind == KIND_STRING ? PyUnicode_CheckExact(value) : kind == KIND_BOOL ? PyBool_Check(value) : value != Py_None;
    if (!known) return unknown;
    PyObject *found = PyDict_GetItemWithError(PyTuple_GET_ITEM(table, 3), value);
    if (found != NULL || PyErr_Occurred()) return found;
    return PyTuple_GET_ITEM(table, 7);
}

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#define DIGITS 1 /* 3.11's int layout: ob_size digits of 30 bits, the sign in ob_size */
#endif

/* alive & every mask, in one pass over each mask's digits and one allocation, where the int layout is
 * known; else one PyNumber_And per mask. A new reference, or NULL with an exception set. */
static PyObject *and_all(PyObject *alive, PyObject **masks, Py_ssize_t count) {
#ifdef DIGITS
    int plain = PyLong_CheckExact(alive) && Py_SIZE(alive) >= 0;
    Py_ssize_t size = plain ? Py_SIZE(alive) : 0;
    for (Py_ssize_t i = 0; plain && i < count; i++) {
        plain = PyLong_CheckExact(masks[i]) && Py_SIZE(masks[i]) >= 0;
        if (plain && Py_SIZE(masks[i]) < size) size = Py_SIZE(masks[i]);
    }
    if (plain) {
        if (size == 0) return PyLong_FromLong(0);
        PyLongObject *out = _PyLong_New(size);
        if (out == NULL) return NULL;
        digit *to = out->ob_digit;
        memcpy(to, ((PyLongObject *)alive)->ob_digit, size * sizeof(digit));
        for (Py_ssize_t i = 0; i < count; i++) {
            const digit *from = ((PyLongObject *)masks[i])->ob_digit;
            for (Py_ssize_t k = 0; k < size; k++) to[k] &= from[k];
        }
        while (size > 0 && to[size - 1] == 0) size--;
        if (size == 0) {
            Py_DECREF(out);
            return PyLong_FromLong(0);
        }
        Py_SET_SIZE(out, size);
        return (PyObject *)out;
    }
#endif
    Py_INCREF(alive);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *narrowed = PyNumber_And(alive, masks[i]);
        Py_DECREF(alive);
        if (narrowed == NULL) return NULL;
        alive = narrowed;
    }
    return alive;
}

static PyObject *stage1(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyDict_Check(args[1]) || !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "stage1(alive, fetched: dict, tables: tuple)");
        return NULL;
    }
    PyObject *alive = args[0], *fetched = args[1], *tables = args[2], *result = NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(tables);
    /* The masks are borrowed from the tables, which the caller holds for the whole call. */
    PyObject *few[64], **masks = count <= 64 ? few : PyMem_Malloc(count * sizeof(PyObject *));
    if (masks == NULL) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *table = PyTuple_GET_ITEM(tables, i);
        PyObject *value = PyDict_GetItemWithError(fetched, PyTuple_GET_ITEM(table, 0));
        if (value == NULL) {
            if (PyErr_Occurred()) goto done;
            value = PyTuple_GET_ITEM(table, 1);
        }
        Py_INCREF(value); /* a comparison may run Python code that changes ``fetched`` */
        masks[i] = keep(table, value);
        Py_DECREF(value);
        if (masks[i] == NULL) goto done;
    }
    result = and_all(alive, masks, count);
done:
    if (masks != few) PyMem_Free(masks);
    return result;
}

static PyMethodDef methods[] = {
    {"stage1", (PyCFunction)(void (*)(void))stage1, METH_FASTCALL,
     "stage1(alive, fetched, tables) -> the candidates the tables leave of alive"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "_stage1", "Stage 1 of a decision plan, in C (see stage1_native.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__stage1(void) { return PyModule_Create(&definition); }
