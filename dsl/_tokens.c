/* The tokenizer's common case in C: what ``tokenizer.python_tokenize`` returns for a file with no lexical error.
 *
 * Tokenizing is a third of parsing a large ruleset, and in Python most of it is the loop around the master
 * regex: a match object, a group lookup and a ``Token`` per token. ``scan(text)`` walks the text once and
 * builds the same ``Token`` objects (their slots filled directly, as ``Token.__init__`` would), with the
 * same contextual keywords, and returns ``(tokens, comments)``. It returns None, and the Python runs
 * instead, on anything else: a lexical error (which the Python reports in words), or a character outside
 * ASCII anywhere but inside a string or a comment, where the regex's Unicode classes (``\d``, ``\w``)
 * would need the Unicode database. So the two agree by construction on what C accepts, and the property
 * test holds them to it. ``configure`` hands over the Python's own tables once, at import.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* What the scanner found at one place, before the contextual keywords. */
enum lexeme { L_NAME, L_PUNCT, L_STRING, L_DURATION, L_PERCENT, L_NUMBER, L_COMMENT, L_END, L_OTHER };

static PyTypeObject *token_type;
static Py_ssize_t off_type, off_value, off_start, off_end;
static PyObject *words, *punctuation, *declaration_starts, *arm_words;
static PyObject *K_NAME, *K_STRING, *K_DURATION, *K_PERCENT, *K_NUMBER, *K_COMMENT, *K_DOT, *K_EQUAL, *K_DEFAULT,
    *K_EXPECT, *K_SHOW, *K_CAP, *K_PER, *K_IN, *K_ATTRIBUTE, *ATTRIBUTE_WORD;

#define SLOT(object, offset) (*(PyObject **)((char *)(object) + (offset)))

static int is_alpha(Py_UCS4 c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(Py_UCS4 c) { return c >= '0' && c <= '9'; }
static int is_space(Py_UCS4 c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'; }

/* The next lexeme from ``*at`` (whitespace skipped): its kind, and its span in ``*start`` and ``*end``.
 * L_OTHER: what the C leaves to the Python (an error token, or a character the regex would read with
 * Unicode classes). */
static enum lexeme next(int kind, const void *data, Py_ssize_t n, Py_ssize_t *at, Py_ssize_t *start,
                        Py_ssize_t *end) {
    Py_ssize_t i = *at;
#define AT(k) ((k) < n ? PyUnicode_READ(kind, data, (k)) : 0)
    while (i < n && is_space(PyUnicode_READ(kind, data, i))) i++;
    *start = i;
    if (i >= n) return L_END;
    Py_UCS4 c = PyUnicode_READ(kind, data, i);
    Py_ssize_t j = i + 1;
    enum lexeme found;
    if (c >= 128) return L_OTHER;
    if (is_alpha(c)) {
        while (j < n && (is_alpha(AT(j)) || is_digit(AT(j)))) j++;
        found = L_NAME;
    } else if (is_digit(c)) {
        /* \d+(\.\d+)? then a unit, %, an exponent, or nothing; a non-ASCII character next could be a digit
         * or a word character to the regex: left to the Python. */
        while (j < n && is_digit(AT(j))) j++;
        if (j < n && AT(j) == '.' && is_digit(AT(j + 1))) {
            j += 2;
            while (j < n && is_digit(AT(j))) j++;
        }
        Py_UCS4 after = AT(j);
        Py_ssize_t stop = j;
        if (after == 's' || after == 'm' || after == 'h' || after == 'd' || after == 'w') {
            stop = j + 1;
            found = L_DURATION;
        } else if (after == '%') {
            *end = *at = j + 1;
            return L_PERCENT;
        } else {
            if ((after == 'e' || after == 'E')) {
                Py_ssize_t k = j + 1;
                if (AT(k) == '+' || AT(k) == '-') k++;
                if (is_digit(AT(k))) {
                    while (k < n && is_digit(AT(k))) k++;
                    stop = k;
                }
            }
            found = L_NUMBER;
        }
        Py_UCS4 next_char = AT(stop);
        if (stop < n && (next_char >= 128 || is_alpha(next_char) || is_digit(next_char) || next_char == '.'))
            return L_OTHER; /* not a number: a bad number, reported by the Python */
        j = stop;
    } else if (c == '"') {
        for (;;) {
            if (j >= n) return L_OTHER; /* never closed */
            Py_UCS4 s = PyUnicode_READ(kind, data, j);
            if (s == '"') {
                j++;
                break;
            }
            if (s == '\n') return L_OTHER;
            if (s == '\\') {
                if (j + 1 >= n || PyUnicode_READ(kind, data, j + 1) == '\n') return L_OTHER;
                j += 2;
            } else {
                j++;
            }
        }
        found = L_STRING;
    } else if (c == '#') {
        while (j < n && PyUnicode_READ(kind, data, j) != '\n') j++;
        found = L_COMMENT;
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
        if (AT(j) == '=') {
            j++;
        } else if (c == '!') {
            return L_OTHER;
        }
        found = L_PUNCT;
    } else if (c != 0 && strchr("+-*/,:.()[]{}", (int)c) != NULL) {
        found = L_PUNCT;
    } else {
        return L_OTHER;
    }
#undef AT
    *end = *at = j;
    return found;
}

static PyObject *new_token(PyObject *kind, PyObject *value, Py_ssize_t start, Py_ssize_t end) {
    PyObject *token = token_type->tp_alloc(token_type, 0);
    if (token == NULL) return NULL;
    PyObject *start_pos = PyLong_FromSsize_t(start), *end_pos = PyLong_FromSsize_t(end);
    if (start_pos == NULL || end_pos == NULL) {
        Py_XDECREF(start_pos);
        Py_XDECREF(end_pos);
        Py_DECREF(token);
        return NULL;
    }
    Py_INCREF(kind);
    Py_INCREF(value);
    SLOT(token, off_type) = kind;
    SLOT(token, off_value) = value;
    SLOT(token, off_start) = start_pos;
    SLOT(token, off_end) = end_pos;
    return token;
}

static void set_type(PyObject *token, PyObject *kind) {
    PyObject *old = SLOT(token, off_type);
    Py_INCREF(kind);
    SLOT(token, off_type) = kind;
    Py_XDECREF(old);
}

static PyObject *type_of(PyObject *token) { return SLOT(token, off_type); }

static PyObject *scan(PyObject *self, PyObject *text) {
    if (token_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "scan(text: str)");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), at = 0, start, end;
    PyObject *tokens = PyList_New(0), *comments = PyList_New(0);
    if (tokens == NULL || comments == NULL) goto failed;
    PyObject *previous = Py_None; /* the type of the last token, as the Python's ``previous`` ("" there) */
    int in_expect = 0, shown = 0, capping = 0;
    for (;;) {
        enum lexeme lexeme = next(kind, data, n, &at, &start, &end);
        if (lexeme == L_END) break;
        if (lexeme == L_OTHER) {
            Py_DECREF(tokens);
            Py_DECREF(comments);
            Py_RETURN_NONE;
        }
        PyObject *value = PyUnicode_Substring(text, start, end);
        if (value == NULL) goto failed;
        PyObject *type;
        Py_ssize_t count = PyList_GET_SIZE(tokens);
        switch (lexeme) {
        case L_NAME:
            if (previous == K_DOT) {
                type = K_NAME; /* after a dot every word is an attribute name */
            } else {
                type = PyDict_GetItemWithError(words, value);
                if (type == NULL) {
                    if (PyErr_Occurred()) goto failed_value;
                    type = K_NAME;
                }
            }
            if (type == K_DEFAULT && in_expect && previous == K_EQUAL) {
                type = K_NAME; /* a test's `expect SLOT = default` */
            } else if (type == K_EXPECT) {
                in_expect = 1;
            } else if (PySet_Contains(declaration_starts, type) == 1) {
                in_expect = shown = capping = 0;
            } else if (type == K_SHOW) {
                shown = 1;
                capping = 0;
            } else if (type == K_CAP) {
                if (shown && previous != K_SHOW && previous != K_IN) {
                    shown = 0;
                    capping = 1;
                } else {
                    type = K_NAME;
                }
            } else if (type == K_PER) {
                if (capping)
                    capping = 0;
                else
                    type = K_NAME;
            }
            break;
        case L_PUNCT:
            type = PyDict_GetItemWithError(punctuation, value);
            if (type == NULL) {
                if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, value);
                goto failed_value;
            }
            if (type == K_DOT && count >= 2) {
                PyObject *word = PyList_GET_ITEM(tokens, count - 2), *scope = PyList_GET_ITEM(tokens, count - 1);
                if (type_of(word) == K_NAME && type_of(scope) == K_NAME &&
                    PyUnicode_Compare(SLOT(word, off_value), ATTRIBUTE_WORD) == 0) {
                    set_type(word, K_ATTRIBUTE);
                    in_expect = shown = capping = 0;
                }
            }
            break;
        case L_COMMENT: {
            PyObject *comment = new_token(K_COMMENT, value, start, end);
            Py_DECREF(value);
            if (comment == NULL || PyList_Append(comments, comment) < 0) {
                Py_XDECREF(comment);
                goto failed;
            }
            Py_DECREF(comment);
            continue;
        }
        case L_PERCENT:
            type = K_PERCENT;
            if (count > 0) {
                PyObject *last = PyList_GET_ITEM(tokens, count - 1);
                if (PySet_Contains(arm_words, type_of(last)) == 1) { /* an arm's name, even a keyword */
                    if (type_of(last) == K_SHOW) shown = capping = 0;
                    set_type(last, K_NAME);
                }
            }
            break;
        case L_STRING:
            type = K_STRING;
            break;
        case L_DURATION:
            type = K_DURATION;
            break;
        default:
            type = K_NUMBER;
            break;
        }
        previous = type;
        PyObject *token = new_token(type, value, start, end);
        Py_DECREF(value);
        if (token == NULL || PyList_Append(tokens, token) < 0) {
            Py_XDECREF(token);
            goto failed;
        }
        Py_DECREF(token);
        continue;
    failed_value:
        Py_DECREF(value);
        goto failed;
    }
    return Py_BuildValue("(NN)", tokens, comments);
failed:
    Py_XDECREF(tokens);
    Py_XDECREF(comments);
    return NULL;
}

/* A copy of ``table`` whose values are the interned strings, so that types compare by identity. */
static PyObject *interned_values(PyObject *table) {
    if (!PyDict_Check(table)) {
        PyErr_SetString(PyExc_TypeError, "a dict of str to str");
        return NULL;
    }
    PyObject *copy = PyDict_New(), *key, *value;
    Py_ssize_t position = 0;
    if (copy == NULL) return NULL;
    while (PyDict_Next(table, &position, &key, &value)) {
        if (!PyUnicode_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "a dict of str to str");
            Py_DECREF(copy);
            return NULL;
        }
        Py_INCREF(value);
        PyUnicode_InternInPlace(&value);
        int failed = PyDict_SetItem(copy, key, value);
        Py_DECREF(value);
        if (failed < 0) {
            Py_DECREF(copy);
            return NULL;
        }
    }
    return copy;
}

static int slot_offset(PyObject *type, const char *name, Py_ssize_t *offset) {
    PyObject *descriptor = PyObject_GetAttrString(type, name);
    if (descriptor == NULL) return -1;
    if (!Py_IS_TYPE(descriptor, &PyMemberDescr_Type) ||
        ((PyMemberDescrObject *)descriptor)->d_member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "Token.%s is not a slot", name);
        Py_DECREF(descriptor);
        return -1;
    }
    *offset = ((PyMemberDescrObject *)descriptor)->d_member->offset;
    Py_DECREF(descriptor);
    return 0;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *type, *word_table, *punctuation_table, *starts, *arms;
    if (!PyArg_ParseTuple(args, "O!OOO!O!:configure", &PyType_Type, &type, &word_table, &punctuation_table,
                          &PyFrozenSet_Type, &starts, &PyFrozenSet_Type, &arms))
        return NULL;
    if (slot_offset(type, "type", &off_type) < 0 || slot_offset(type, "value", &off_value) < 0 ||
        slot_offset(type, "start_pos", &off_start) < 0 || slot_offset(type, "end_pos", &off_end) < 0)
        return NULL;
    PyObject *new_words = interned_values(word_table);
    if (new_words == NULL) return NULL;
    PyObject *new_punctuation = interned_values(punctuation_table);
    if (new_punctuation == NULL) {
        Py_DECREF(new_words);
        return NULL;
    }
    Py_XSETREF(words, new_words);
    Py_XSETREF(punctuation, new_punctuation);
    Py_INCREF(starts);
    Py_XSETREF(declaration_starts, starts);
    Py_INCREF(arms);
    Py_XSETREF(arm_words, arms);
    Py_INCREF(type);
    Py_XSETREF(token_type, (PyTypeObject *)type);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Token, words, punctuation, declaration_starts, arm_words): the tokenizer's tables"},
    {"scan", scan, METH_O, "scan(text) -> (tokens, comments), or None where the Python must tokenize"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "_tokens", "The tokenizer's common case, in C (see tokenizer.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__tokens(void) {
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&K_NAME, "NAME"},       {&K_STRING, "STRING"},       {&K_DURATION, "DURATION"}, {&K_PERCENT, "PERCENT"},
        {&K_NUMBER, "NUMBER"},   {&K_COMMENT, "COMMENT"},     {&K_DOT, "_DOT"},          {&K_EQUAL, "_EQUAL"},
        {&K_DEFAULT, "DEFAULT"}, {&K_EXPECT, "_EXPECT"},      {&K_SHOW, "_SHOW"},        {&K_CAP, "CAP"},
        {&K_PER, "_PER"},        {&K_IN, "_IN"},              {&K_ATTRIBUTE, "ATTRIBUTE"}, {&ATTRIBUTE_WORD, "attribute"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) return NULL;
    }
    return PyModule_Create(&definition);
}
