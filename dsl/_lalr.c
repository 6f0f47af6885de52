/* The LALR(1) fast loop in C: what ``lalr_driver._FastParser.python_parse`` does, without the interpreter.
 *
 * After tokenizing, the loop over Lark's tables is the largest part of parsing a large file that is not
 * the tree builder's own work: per token a dictionary lookup, per reduction a slice of the value stack,
 * and more than half of all reductions only swap the top state. ``parse`` runs the same loop over the same
 * tables (a list of dicts from token type or nonterminal to a shift's next state, an int, or a ``_Reduce``)
 * and calls the same callbacks, so it builds the same tree; on a token with no action it raises the
 * exception it was configured with, and the caller hands the parse to Lark, as it does for the Python loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *no_action; /* the exception a missing action raises */
static PyObject *s_type, *s_index, *s_size, *s_origin;

typedef struct {
    Py_ssize_t *items;
    Py_ssize_t length, capacity;
} Stack;

static int push(Stack *stack, Py_ssize_t state) {
    if (stack->length == stack->capacity) {
        Py_ssize_t capacity = stack->capacity ? stack->capacity * 2 : 64;
        Py_ssize_t *items = PyMem_Realloc(stack->items, capacity * sizeof(Py_ssize_t));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        stack->items = items;
        stack->capacity = capacity;
    }
    stack->items[stack->length++] = state;
    return 0;
}

/* ``actions[state][symbol]``, borrowed; NULL with the configured exception set when there is none. */
static PyObject *action_of(PyObject *actions, Py_ssize_t state, PyObject *symbol) {
    if (state < 0 || state >= PyList_GET_SIZE(actions)) {
        PyErr_SetString(PyExc_IndexError, "a state outside the table");
        return NULL;
    }
    PyObject *action = PyDict_GetItemWithError(PyList_GET_ITEM(actions, state), symbol);
    if (action == NULL && !PyErr_Occurred()) PyErr_SetNone(no_action);
    return action;
}

/* The state the goto of ``origin`` leads to from ``state``. */
static int goto_of(PyObject *actions, Py_ssize_t state, PyObject *origin, Py_ssize_t *next) {
    PyObject *target = action_of(actions, state, origin);
    if (target == NULL) return -1;
    *next = PyLong_AsSsize_t(target);
    return (*next == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* The top state after one-child reductions, from the ``passes`` cache or, on a miss, ``passed``. */
static int passed_state(PyObject *passes, PyObject *passed, Py_ssize_t below, Py_ssize_t state, PyObject *kind,
                        Py_ssize_t *top) {
    PyObject *key = Py_BuildValue("(nnO)", below, state, kind);
    if (key == NULL) return -1;
    PyObject *found = PyDict_GetItemWithError(passes, key);
    if (found != NULL) {
        Py_INCREF(found);
    } else if (!PyErr_Occurred()) {
        found = PyObject_CallFunction(passed, "nnO", below, state, kind);
        if (found != NULL && PyDict_SetItem(passes, key, found) < 0) Py_CLEAR(found);
    }
    Py_DECREF(key);
    if (found == NULL) return -1;
    *top = PyLong_AsSsize_t(found);
    Py_DECREF(found);
    return (*top == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* parse(actions, passes, passed, tokens, end_token, start_state, end_state, callbacks) -> the tree */
static PyObject *parse(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (no_action == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    if (nargs != 8 || !PyList_Check(args[0]) || !PyDict_Check(args[1]) || !PyList_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "parse(actions: list, passes: dict, passed, tokens: list, end, start: int, end_state: int, "
                        "callbacks)");
        return NULL;
    }
    PyObject *actions = args[0], *passes = args[1], *passed = args[2], *tokens = args[3], *end = args[4];
    PyObject *callbacks = args[7];
    Py_ssize_t state = PyLong_AsSsize_t(args[5]), end_state = PyLong_AsSsize_t(args[6]);
    if (PyErr_Occurred()) return NULL;
    Stack states = {NULL, 0, 0};
    PyObject *values = PyList_New(0), *result = NULL, *kind = NULL, *children = NULL;
    if (values == NULL || push(&states, state) < 0) goto done;
    Py_ssize_t count = PyList_GET_SIZE(tokens);
    for (Py_ssize_t t = 0; t <= count; t++) {
        PyObject *token = t < count ? PyList_GET_ITEM(tokens, t) : end;
        Py_XSETREF(kind, PyObject_GetAttr(token, s_type));
        if (kind == NULL) goto done;
        for (;;) {
            PyObject *action = action_of(actions, state, kind);
            if (action == NULL) goto done;
            if (PyLong_CheckExact(action)) {
                if (token == end) { /* Lark asserts: nothing is shifted after the end */
                    PyErr_SetNone(no_action);
                    goto done;
                }
                state = PyLong_AsSsize_t(action);
                if ((state == -1 && PyErr_Occurred()) || push(&states, state) < 0 ||
                    PyList_Append(values, token) < 0)
                    goto done;
                break;
            }
            PyObject *index = PyObject_GetAttr(action, s_index);
            if (index == NULL) goto done;
            if (index == Py_None) { /* one child passed through, perhaps several times: swap the top state */
                Py_DECREF(index);
                if (states.length < 2) {
                    PyErr_SetNone(no_action);
                    goto done;
                }
                if (passed_state(passes, passed, states.items[states.length - 2], state, kind, &state) < 0) goto done;
                states.items[states.length - 1] = state;
            } else {
                PyObject *size_object = PyObject_GetAttr(action, s_size);
                Py_ssize_t size = size_object ? PyLong_AsSsize_t(size_object) : -1;
                Py_XDECREF(size_object);
                if (size < 0 || size > PyList_GET_SIZE(values) || size >= states.length) {
                    Py_DECREF(index);
                    if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "a reduction beyond the stack");
                    goto done;
                }
                Py_ssize_t keep = PyList_GET_SIZE(values) - size;
                children = PyList_GetSlice(values, keep, keep + size);
                if (children == NULL || PyList_SetSlice(values, keep, keep + size, NULL) < 0) {
                    Py_DECREF(index);
                    goto done;
                }
                states.length -= size;
                PyObject *callback = PyObject_GetItem(callbacks, index);
                Py_DECREF(index);
                if (callback == NULL) goto done;
                PyObject *value = PyObject_CallOneArg(callback, children);
                Py_DECREF(callback);
                Py_CLEAR(children);
                if (value == NULL) goto done;
                int appended = PyList_Append(values, value);
                Py_DECREF(value);
                if (appended < 0) goto done;
                PyObject *origin = PyObject_GetAttr(action, s_origin);
                if (origin == NULL) goto done;
                int failed = goto_of(actions, states.items[states.length - 1], origin, &state);
                Py_DECREF(origin);
                if (failed < 0 || push(&states, state) < 0) goto done;
            }
            if (state == end_state && token == end) {
                if (PyList_GET_SIZE(values) == 0) { /* the Python loop's values[-1] would raise too */
                    PyErr_SetString(PyExc_IndexError, "the parse ended with nothing built");
                    goto done;
                }
                result = PyList_GET_ITEM(values, PyList_GET_SIZE(values) - 1);
                Py_INCREF(result);
                goto done;
            }
        }
    }
    PyErr_SetString(PyExc_AssertionError, "unreachable: the end token either finishes the parse or fails it");
done:
    Py_XDECREF(kind);
    Py_XDECREF(children);
    Py_XDECREF(values);
    PyMem_Free(states.items);
    return result;
}

static PyObject *configure(PyObject *self, PyObject *exception) {
    if (!PyExceptionClass_Check(exception)) {
        PyErr_SetString(PyExc_TypeError, "configure(exception class)");
        return NULL;
    }
    Py_INCREF(exception);
    Py_XSETREF(no_action, exception);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_O, "configure(NoAction): the exception a token with no action raises"},
    {"parse", (PyCFunction)(void (*)(void))parse, METH_FASTCALL,
     "parse(actions, passes, passed, tokens, end, start, end_state, callbacks) -> the tree"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "_lalr", "The LALR(1) fast loop, in C (see lalr_driver.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__lalr(void) {
    if ((s_type = PyUnicode_InternFromString("type")) == NULL ||
        (s_index = PyUnicode_InternFromString("index")) == NULL ||
        (s_size = PyUnicode_InternFromString("size")) == NULL ||
        (s_origin = PyUnicode_InternFromString("origin")) == NULL)
        return NULL;
    return PyModule_Create(&definition);
}
