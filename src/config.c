/* config.c - see include/config.h. The only file that includes yaml.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "dist.h"
#include "sha256.h"

/* ---- enum names (index = enum value; NULL-terminated; a hole is caught by check_table) ------------------------ */

static const char *const cfg_names_Augment[AUGMENT_COUNT + 1] = {
    [AUGMENT_NONE] = "none", [AUGMENT_FLIP] = "flip", [AUGMENT_CROP_FLIP] = "crop_flip"};
static const char *const cfg_names_Arch[ARCH_COUNT + 1] = {
    [ARCH_MLP] = "mlp", [ARCH_FMNIST_CNN] = "fmnist-cnn", [ARCH_RESNET18_CIFAR] = "resnet18-cifar"};
static const char *const cfg_names_DistMode[DIST_MODE_COUNT + 1] = {
    [DIST_MODE_RANK0] = "rank0", [DIST_MODE_REPLICATED] = "replicated"};
static const char *const cfg_names_TrainOn[TRAIN_ON_COUNT + 1] = {[TRAIN_ON_ALL] = "all", [TRAIN_ON_RETAIN] = "retain"};
static const char *const cfg_names_Method[METHOD_COUNT + 1] = {
    [METHOD_SFRON] = "sfron", [METHOD_FT] = "ft",   [METHOD_GA] = "ga",       [METHOD_RL] = "rl",
    [METHOD_SALUN] = "salun", [METHOD_L1] = "l1",   [METHOD_SCRUB] = "scrub", [METHOD_BT] = "bt"};
static const char *const cfg_names_MaskKind[MASK_COUNT + 1] = {
    [MASK_FISHER] = "fisher", [MASK_TOPK] = "topk", [MASK_NONE] = "none"};
static const char *const cfg_names_ResumeMode[RESUME_COUNT + 1] = {[RESUME_AUTO] = "auto", [RESUME_NEVER] = "never"};
static const char *const cfg_names_OptimKind[OPTIM_KIND_COUNT + 1] = {
    [OPTIM_SGD] = "sgd", [OPTIM_ADAM] = "adam", [OPTIM_ADAMW] = "adamw"};
static const char *const cfg_names_SchedKind[SCHED_KIND_COUNT + 1] = {
    [SCHED_CONSTANT] = "constant", [SCHED_LINEAR] = "linear", [SCHED_COSINE] = "cosine"};

/* ---- the table ------------------------------------------------------------------------------------------------ */

#define CFG_KIND_INT CFG_INT
#define CFG_KIND_INT64 CFG_INT64
#define CFG_KIND_DOUBLE CFG_DOUBLE
#define CFG_KIND_BOOL CFG_BOOL
#define CFG_KIND_STRING CFG_STRING
#define CFG_KIND_INTS CFG_INTS
#define CFG_KIND_FLOATS CFG_FLOATS
#define CFG_KIND_ENUM(T) CFG_ENUM
#define CFG_NAMES_INT NULL
#define CFG_NAMES_INT64 NULL
#define CFG_NAMES_DOUBLE NULL
#define CFG_NAMES_BOOL NULL
#define CFG_NAMES_STRING NULL
#define CFG_NAMES_INTS NULL
#define CFG_NAMES_FLOATS NULL
#define CFG_NAMES_ENUM(T) cfg_names_##T

#define ROW(sec, field, kind, def, lo, hi, flags, help)                                                          \
    {#sec "." #field, CFG_KIND_##kind, offsetof(Config, sec.field), sizeof(((Config *)0)->sec.field), def, lo, hi, \
     flags, CFG_NAMES_##kind, help},
#define ROW_TOP(sec, field, kind, def, lo, hi, flags, help)                                                      \
    {#field, CFG_KIND_##kind, offsetof(Config, field), sizeof(((Config *)0)->field), def, lo, hi, flags,           \
     CFG_NAMES_##kind, help},

static const ConfigKey g_keys[] = {
    CFG_KEYS_TOP(ROW_TOP)
    CFG_KEYS_DATA(ROW)
    CFG_KEYS_MODEL(ROW)
    CFG_KEYS_FORGET(ROW)
    CFG_KEYS_RUNTIME(ROW)
    CFG_KEYS_TRAIN(ROW)
    CFG_KEYS_UNLEARN(ROW)
    CFG_KEYS_EVAL(ROW)
    CFG_KEYS_CHECKPOINT(ROW)
};
_Static_assert(sizeof g_keys / sizeof g_keys[0] == CFG_KEY_COUNT, "config.c's table misses a section of CFG_SECTIONS");

/* The forget split: exactly one of these three kinds may be given. */
static const char *const g_split_kinds[] = {"forget.classes", "forget.fraction", "forget.indices"};

const ConfigKey *config_keys(int *count)
{
    if (count) *count = CFG_KEY_COUNT;
    return g_keys;
}

static int key_index(const char *path)
{
    for (int i = 0; i < CFG_KEY_COUNT; i++)
        if (strcmp(g_keys[i].path, path) == 0) return i;
    return -1;
}

const ConfigKey *config_find_key(const char *path)
{
    int i = key_index(path);
    return i < 0 ? NULL : &g_keys[i];
}

static int enum_count(const ConfigKey *k)
{
    int n = 0;
    while (k->names[n]) n++;
    return n;
}

const char *config_enum_name(const char *path, int value)
{
    const ConfigKey *k = config_find_key(path);
    UL_CHECK(k && k->kind == CFG_ENUM, "config_enum_name: '%s' is not an enum key", path);
    UL_CHECK(value >= 0 && value < enum_count(k), "config_enum_name: %d is not a value of '%s'", value, path);
    return k->names[value];
}

static bool is_split_key(const ConfigKey *k) { return strncmp(k->path, "forget.", 7) == 0; }

static bool is_split_kind(const char *path)
{
    for (size_t i = 0; i < sizeof g_split_kinds / sizeof g_split_kinds[0]; i++)
        if (strcmp(path, g_split_kinds[i]) == 0) return true;
    return false;
}

static const char *kind_name(CfgKind kind)
{
    switch (kind) {
    case CFG_INT: return "int";
    case CFG_INT64: return "int64";
    case CFG_DOUBLE: return "float";
    case CFG_BOOL: return "bool";
    case CFG_STRING: return "string";
    case CFG_ENUM: return "enum";
    case CFG_INTS: return "int list";
    case CFG_FLOATS: return "float list";
    }
    return "?";
}

static const char *kind_expectation(CfgKind kind)
{
    switch (kind) {
    case CFG_INT:
    case CFG_INT64: return "an integer";
    case CFG_DOUBLE: return "a number";
    case CFG_BOOL: return "true or false";
    case CFG_STRING: return "a string";
    case CFG_ENUM: return "one of its names";
    case CFG_INTS: return "a list of integers like [1, 2]";
    case CFG_FLOATS: return "a list of numbers like [0.5, 1]";
    }
    return "?";
}

/* ---- did-you-mean ---------------------------------------------------------------------------------------------- */

/* Optimal-string-alignment edit distance (insert, delete, substitute, swap of neighbours), case-sensitive.
   Strings longer than EDIT_MAX count as "far" (their length). */
#define EDIT_MAX 128
static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > EDIT_MAX || m > EDIT_MAX) return n > m ? n : m;
    size_t rows[3][EDIT_MAX + 1]; /* row i of the DP table lives in rows[i % 3] */
    for (size_t j = 0; j <= m; j++) rows[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t *cur = rows[i % 3], *prev = rows[(i + 2) % 3], *prev2 = rows[(i + 1) % 3];
        cur[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = prev[j] + 1;
            if (cur[j - 1] + 1 < v) v = cur[j - 1] + 1;
            if (prev[j - 1] + cost < v) v = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < v)
                v = prev2[j - 2] + 1;
            cur[j] = v;
        }
    }
    return rows[n % 3][m];
}

static size_t close_enough(const char *s)
{
    size_t t = strlen(s) / 4;
    return t < 2 ? 2 : t;
}

static const char *last_component(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* Writes "; did you mean 'x'?" (or "; did you mean one of 'x', 'y'?") for an unknown key into buf, or "". */
static void suggest_key(const char *unknown, char *buf, size_t cap)
{
    /* 1. the closest key path or section name */
    char best[128] = "";
    size_t best_d = (size_t)-1;
    for (int i = 0; i < CFG_KEY_COUNT; i++) {
        const char *path = g_keys[i].path, *dot = strchr(path, '.');
        size_t d = edit_distance(unknown, path);
        if (d < best_d) best_d = d, snprintf(best, sizeof best, "%s", path);
        if (dot) {
            char sec[64];
            snprintf(sec, sizeof sec, "%.*s", (int)(dot - path), path);
            d = edit_distance(unknown, sec);
            if (d < best_d) best_d = d, snprintf(best, sizeof best, "%s", sec);
        }
    }
    if (best_d <= close_enough(unknown)) {
        snprintf(buf, cap, "; did you mean '%s'?", best);
        return;
    }
    /* 2. keys whose last component is (nearly) the unknown's, e.g. 'lr' -> 'train.lr', 'unlearn.lr' */
    const char *leaf = last_component(unknown);
    char list[512] = "";
    size_t used = 0;
    int found = 0;
    for (int i = 0; i < CFG_KEY_COUNT && found < 4; i++) {
        if (edit_distance(leaf, last_component(g_keys[i].path)) > (strlen(leaf) > 3 ? 1u : 0u)) continue;
        int w = snprintf(list + used, sizeof list - used, "%s'%s'", found ? ", " : "", g_keys[i].path);
        if (w < 0 || (size_t)w >= sizeof list - used) break;
        used += (size_t)w;
        found++;
    }
    if (found) snprintf(buf, cap, "; did you mean %s%s?", found > 1 ? "one of " : "", list);
    else buf[0] = '\0';
}

/* ---- scalar parsing -------------------------------------------------------------------------------------------- */

/* Decimal integer text -> *out. Returns 1 on success, 0 when s is not an integer, -1 when it overflows int64. */
static int parse_int64_text(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!isdigit((unsigned char)*p)) return 0;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return 0;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) return -1;
    *out = (int64_t)v;
    return 1;
}

static bool parse_double_text(const char *s, double *out)
{
    if (!*s || isspace((unsigned char)*s)) return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) return false;
    *out = v;
    return true;
}

static int strcasecmp_ascii(const char *a, const char *b)
{
    for (;; a++, b++) {
        int ca = tolower((unsigned char)*a), cb = tolower((unsigned char)*b);
        if (ca != cb || !ca) return ca - cb;
    }
}

static bool parse_bool_text(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp_ascii(s, yes[i]) == 0) return *out = true, true;
        if (strcasecmp_ascii(s, no[i]) == 0) return *out = false, true;
    }
    return false;
}

static void format_bound(double v, char *buf, size_t cap) { snprintf(buf, cap, "%.15g", v); }

/* Checks v against k's range; error "where: key: text is out of range [lo, hi]". */
static bool check_range(const ConfigKey *k, double v, const char *text, const char *where, UlError *err)
{
    bool lo_ok = (k->flags & CFG_OPEN_MIN) ? v > k->min : v >= k->min;
    bool hi_ok = (k->flags & CFG_OPEN_MAX) ? v < k->max : v <= k->max;
    if (lo_ok && hi_ok) return true;
    char lo[40], hi[40];
    format_bound(k->min, lo, sizeof lo);
    format_bound(k->max, hi, sizeof hi);
    ul_error_set(err, "%s: %s: %s is out of range %c%s, %s%c", where, k->path, text,
                 (k->flags & CFG_OPEN_MIN) ? '(' : '[', lo, hi, (k->flags & CFG_OPEN_MAX) ? ')' : ']');
    return false;
}

/* Parses one scalar text as an element of k's kind into the out slots. */
static bool parse_number(const ConfigKey *k, bool integer, const char *text, const char *where, int64_t *iv,
                         double *dv, UlError *err)
{
    if (integer) {
        int parsed = parse_int64_text(text, iv);
        if (parsed == 0) {
            if (!*text) ul_error_set(err, "%s: %s: expected an integer, got an empty value", where, k->path);
            else ul_error_set(err, "%s: %s: expected an integer, got '%s'", where, k->path, text);
            return false;
        }
        bool is32 = k->kind == CFG_INT || k->kind == CFG_INTS;
        if (parsed < 0 || (is32 && (*iv < INT_MIN || *iv > INT_MAX))) {
            ul_error_set(err, "%s: %s: %s does not fit in a %d-bit integer", where, k->path, text, is32 ? 32 : 64);
            return false;
        }
        return check_range(k, (double)*iv, text, where, err);
    }
    if (!parse_double_text(text, dv)) {
        if (!*text) ul_error_set(err, "%s: %s: expected a number, got an empty value", where, k->path);
        else ul_error_set(err, "%s: %s: expected a number, got '%s'", where, k->path, text);
        return false;
    }
    return check_range(k, *dv, text, where, err);
}

/* ---- applying a YAML value to a key ------------------------------------------------------------------------- */

static const char *node_text(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static bool node_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *s = node_text(n);
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static const char *node_kind_name(const yaml_node_t *n)
{
    return n->type == YAML_SEQUENCE_NODE ? "a list" : n->type == YAML_MAPPING_NODE ? "a mapping" : "a value";
}

/* Sets key k of cfg from node (of doc). `where` prefixes messages ("jobs/x.yaml:7" or "--set k=v"). */
static bool apply_value(Config *cfg, const ConfigKey *k, yaml_document_t *doc, yaml_node_t *node, const char *where,
                        UlError *err)
{
    char *field = (char *)cfg + k->offset;
    bool list = k->kind == CFG_INTS || k->kind == CFG_FLOATS;
    if (!list && node->type != YAML_SCALAR_NODE) {
        ul_error_set(err, "%s: %s: expected %s, got %s", where, k->path, kind_expectation(k->kind),
                     node_kind_name(node));
        return false;
    }
    int64_t iv = 0;
    double dv = 0;
    switch (k->kind) {
    case CFG_INT:
        if (!parse_number(k, true, node_text(node), where, &iv, &dv, err)) return false;
        *(int *)field = (int)iv;
        return true;
    case CFG_INT64:
        if (!parse_number(k, true, node_text(node), where, &iv, &dv, err)) return false;
        *(int64_t *)field = iv;
        return true;
    case CFG_DOUBLE:
        if (!parse_number(k, false, node_text(node), where, &iv, &dv, err)) return false;
        *(double *)field = dv;
        return true;
    case CFG_BOOL: {
        bool b = false;
        if (!parse_bool_text(node_text(node), &b)) {
            ul_error_set(err, "%s: %s: expected true or false, got '%s'", where, k->path, node_text(node));
            return false;
        }
        *(bool *)field = b;
        return true;
    }
    case CFG_STRING: {
        const char *s = node_is_null(node) ? "" : node_text(node);
        if (strlen(s) >= k->size) {
            ul_error_set(err, "%s: %s: the value is %zu bytes long; at most %zu are allowed", where, k->path, strlen(s),
                         k->size - 1);
            return false;
        }
        memcpy(field, s, strlen(s) + 1);
        return true;
    }
    case CFG_ENUM: {
        const char *s = node_text(node);
        int n = enum_count(k);
        for (int i = 0; i < n; i++)
            if (strcasecmp_ascii(s, k->names[i]) == 0) {
                *(int *)field = i;
                return true;
            }
        char allowed[512] = "", hint[160] = "";
        size_t used = 0, best_d = (size_t)-1;
        int best = -1;
        for (int i = 0; i < n; i++) {
            int w = snprintf(allowed + used, sizeof allowed - used, "%s%s", i ? ", " : "", k->names[i]);
            if (w > 0 && (size_t)w < sizeof allowed - used) used += (size_t)w;
            size_t d = edit_distance(s, k->names[i]);
            if (d < best_d) best_d = d, best = i;
        }
        if (best >= 0 && best_d <= close_enough(s)) snprintf(hint, sizeof hint, "; did you mean '%s'?", k->names[best]);
        ul_error_set(err, "%s: %s: '%s' is not one of %s%s", where, k->path, s, allowed, hint);
        return false;
    }
    case CFG_INTS:
    case CFG_FLOATS: {
        yaml_node_t *one[1] = {node};
        yaml_node_t **items = one;
        int count = 1;
        yaml_node_t *buf[CFG_LIST_MAX];
        if (node->type == YAML_MAPPING_NODE) {
            ul_error_set(err, "%s: %s: expected %s, got a mapping", where, k->path, kind_expectation(k->kind));
            return false;
        }
        if (node->type == YAML_SEQUENCE_NODE) {
            count = 0;
            for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
                if (count == CFG_LIST_MAX) {
                    ul_error_set(err, "%s: %s: more than %d elements", where, k->path, CFG_LIST_MAX);
                    return false;
                }
                buf[count++] = yaml_document_get_node(doc, *it);
            }
            items = buf;
        }
        CfgIntList *il = (CfgIntList *)field;
        CfgFloatList *fl = (CfgFloatList *)field;
        for (int i = 0; i < count; i++) {
            if (!items[i] || items[i]->type != YAML_SCALAR_NODE) {
                ul_error_set(err, "%s: %s: element %d: expected %s, got %s", where, k->path, i,
                             k->kind == CFG_INTS ? "an integer" : "a number",
                             items[i] ? node_kind_name(items[i]) : "?");
                return false;
            }
            if (!parse_number(k, k->kind == CFG_INTS, node_text(items[i]), where, &iv, &dv, err)) return false;
            if (k->kind == CFG_INTS) il->v[i] = (int)iv;
            else fl->v[i] = dv;
        }
        if (k->kind == CFG_INTS) il->n = count;
        else fl->n = count;
        return true;
    }
    }
    return false;
}

/* Resets key i to "not given" (its default, or zero when it has none). */
static void clear_key(Config *cfg, int i);

/* ---- YAML documents ------------------------------------------------------------------------------------------ */

/* Parses text into doc. On failure fills err with "display:LINE: malformed YAML: problem (context)". */
/* what = "YAML" for a job file (messages give lines), "value" for a --set value or a default (one line: no line
   numbers). */
static bool load_document(const char *display, const char *what, const char *text, size_t len, yaml_document_t *doc,
                          UlError *err)
{
    bool lines = strcmp(what, "YAML") == 0;
    yaml_parser_t parser;
    UL_CHECK(yaml_parser_initialize(&parser), "libyaml: yaml_parser_initialize failed (out of memory)");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    bool ok = yaml_parser_load(&parser, doc) != 0;
    if (!ok) {
        char ctx[200] = "", at[32] = "";
        if (parser.context && lines)
            snprintf(ctx, sizeof ctx, " (%s at line %zu)", parser.context, parser.context_mark.line + 1);
        else if (parser.context)
            snprintf(ctx, sizeof ctx, " (%s)", parser.context);
        if (lines) snprintf(at, sizeof at, ":%zu", parser.problem_mark.line + 1);
        if (parser.error == YAML_MEMORY_ERROR)
            ul_fatal(__FILE__, __LINE__, "libyaml: out of memory parsing %s", display);
        else if (parser.error == YAML_READER_ERROR)
            ul_error_set(err, "%s: malformed %s: %s at byte %zu", display, what,
                         parser.problem ? parser.problem : "unreadable input", parser.problem_offset);
        else
            ul_error_set(err, "%s%s: malformed %s: %s%s", display, at, what,
                         parser.problem ? parser.problem : "syntax error", ctx);
    } else if (yaml_document_get_root_node(doc)) {
        /* A second document in the same text is a mistake (a stray '---'). */
        yaml_document_t next;
        char at_line[32];
        if (yaml_parser_load(&parser, &next)) {
            yaml_node_t *root2 = yaml_document_get_root_node(&next);
            if (root2) {
                snprintf(at_line, sizeof at_line, ":%zu", root2->start_mark.line + 1);
                ul_error_set(err, "%s%s: malformed %s: more than one YAML document (a second '---'?)", display,
                             lines ? at_line : "", what);
                ok = false;
            }
            yaml_document_delete(&next);
        } else {
            snprintf(at_line, sizeof at_line, ":%zu", parser.problem_mark.line + 1);
            ul_error_set(err, "%s%s: malformed %s: %s", display, lines ? at_line : "", what,
                         parser.problem ? parser.problem : "syntax error");
            ok = false;
        }
        if (!ok) yaml_document_delete(doc);
    }
    yaml_parser_delete(&parser);
    return ok;
}

/* True when some key lives under `prefix.` (a section such as "unlearn"). */
static bool is_section(const char *prefix)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < CFG_KEY_COUNT; i++)
        if (strncmp(g_keys[i].path, prefix, n) == 0 && g_keys[i].path[n] == '.') return true;
    return false;
}

/* "data.path, data.cache, ..." (the first few keys of a section) into buf. */
static void section_keys(const char *prefix, char *buf, size_t cap)
{
    size_t n = strlen(prefix), used = 0;
    int shown = 0;
    buf[0] = '\0';
    for (int i = 0; i < CFG_KEY_COUNT; i++) {
        if (strncmp(g_keys[i].path, prefix, n) != 0 || g_keys[i].path[n] != '.') continue;
        if (shown == 4) {
            snprintf(buf + used, cap - used, ", ...");
            return;
        }
        int w = snprintf(buf + used, cap - used, "%s%s", shown ? ", " : "", g_keys[i].path);
        if (w < 0 || (size_t)w >= cap - used) return;
        used += (size_t)w;
        shown++;
    }
}

typedef struct Source {
    const char *display;  /* file name, or "--set k=v" */
    bool is_set;          /* a --set override (else a job file) */
    int set_index;        /* which --set */
} Source;

/* Applies node (any YAML value) to the key `path`, with origin bookkeeping and the split's exactly-one rule. */
static bool apply_key(Config *cfg, const Source *src, const char *path, yaml_document_t *doc, yaml_node_t *node,
                      int line, UlError *err)
{
    char where[CFG_STRING_MAX + 64];
    if (src->is_set) snprintf(where, sizeof where, "%s", src->display);
    else snprintf(where, sizeof where, "%s:%d", src->display, line);

    int i = key_index(path);
    if (i < 0) {
        if (is_section(path)) {
            char keys[300];
            section_keys(path, keys, sizeof keys);
            ul_error_set(err, "%s: '%s' is a section, not a value; give its keys (%s)", where, path, keys);
            return false;
        }
        char hint[600];
        suggest_key(path, hint, sizeof hint);
        ul_error_set(err, "%s: unknown key '%s'%s", where, path, hint);
        return false;
    }
    const ConfigKey *k = &g_keys[i];
    if (!src->is_set && cfg->origin[i] == CFG_FROM_FILE) {
        ul_error_set(err, "%s: duplicate key '%s' (first given at line %d)", where, path, cfg->line[i]);
        return false;
    }
    if (is_split_kind(k->path)) {
        for (int j = 0; j < CFG_KEY_COUNT; j++) {
            if (j == i || !is_split_kind(g_keys[j].path) || cfg->origin[j] == CFG_FROM_DEFAULT) continue;
            if (src->is_set) {
                clear_key(cfg, j); /* an override replaces the job file's split (and a fraction's seed) */
                int seed = key_index("forget.seed");
                if (strcmp(k->path, "forget.fraction") != 0 && cfg->origin[seed] == CFG_FROM_FILE) clear_key(cfg, seed);
            } else {
                ul_error_set(err,
                             "%s: forget: give exactly one of classes, fraction, indices ('%s' is given at line %d)",
                             where, g_keys[j].path, cfg->line[j]);
                return false;
            }
        }
    }
    if (!apply_value(cfg, k, doc, node, where, err)) return false;
    cfg->origin[i] = (unsigned char)(src->is_set ? CFG_FROM_SET : CFG_FROM_FILE);
    cfg->line[i] = src->is_set ? 0 : line;
    return true;
}

/* Walks a mapping node; keys are joined to prefix with '.'; sections recurse. */
static bool apply_mapping(Config *cfg, const Source *src, const char *prefix, yaml_document_t *doc, yaml_node_t *map,
                          UlError *err)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
        int line = (int)kn->start_mark.line + 1;
        if (kn->type != YAML_SCALAR_NODE) {
            ul_error_set(err, "%s:%d: keys must be plain names, got %s", src->display, line, node_kind_name(kn));
            return false;
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *qn = yaml_document_get_node(doc, q->key);
            if (qn->type == YAML_SCALAR_NODE && strcmp(node_text(qn), node_text(kn)) == 0) {
                ul_error_set(err, "%s:%d: duplicate key '%s%s%s' (first given at line %d)", src->display, line, prefix,
                             *prefix ? "." : "", node_text(kn), (int)qn->start_mark.line + 1);
                return false;
            }
        }
        char path[256];
        int w = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", node_text(kn));
        if (w < 0 || (size_t)w >= sizeof path) {
            ul_error_set(err, "%s:%d: key '%.60s...' is too long", src->display, line, node_text(kn));
            return false;
        }
        if (vn->type == YAML_MAPPING_NODE && key_index(path) < 0 && is_section(path)) {
            if (!apply_mapping(cfg, src, path, doc, vn, err)) return false;
            continue;
        }
        if (!apply_key(cfg, src, path, doc, vn, line, err)) return false;
    }
    return true;
}

/* Applies one "key=value" override. */
static bool apply_set(Config *cfg, const char *set, int index, UlError *err)
{
    char display[CFG_STRING_MAX + 16];
    snprintf(display, sizeof display, "--set %s", set);
    const char *eq = strchr(set, '=');
    if (!eq || eq == set) {
        ul_error_set(err, "%s: expected key=value (e.g. --set unlearn.lr=0.02)", display);
        return false;
    }
    char path[256];
    size_t n = (size_t)(eq - set);
    if (n >= sizeof path) {
        ul_error_set(err, "%s: the key is too long", display);
        return false;
    }
    memcpy(path, set, n);
    path[n] = '\0';
    Source src = {.display = display, .is_set = true, .set_index = index};
    if (key_index(path) < 0) return apply_key(cfg, &src, path, NULL, NULL, 0, err); /* unknown or section: error */
    const char *value = eq + 1;
    yaml_document_t doc;
    if (!load_document(display, "value", value, strlen(value), &doc, err)) return false;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t empty = {.type = YAML_SCALAR_NODE};
    empty.data.scalar.value = (yaml_char_t *)"";
    empty.data.scalar.style = YAML_PLAIN_SCALAR_STYLE;
    bool ok = apply_key(cfg, &src, path, &doc, root ? root : &empty, 0, err);
    yaml_document_delete(&doc);
    return ok;
}

/* ---- defaults ------------------------------------------------------------------------------------------------- */

/* Parses a default text into key k (internal: a bad default is a programming error). */
static void apply_default(Config *cfg, const ConfigKey *k)
{
    UlError err = {0};
    yaml_document_t doc;
    UL_CHECK(load_document(k->path, "default", k->def, strlen(k->def), &doc, &err), "bad default of %s: %s", k->path,
             err.msg);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    UL_CHECK(root != NULL, "empty default of %s", k->path);
    char where[300];
    snprintf(where, sizeof where, "default of %s", k->path);
    UL_CHECK(apply_value(cfg, k, &doc, root, where, &err), "%s", err.msg);
    yaml_document_delete(&doc);
}

static void clear_key(Config *cfg, int i)
{
    const ConfigKey *k = &g_keys[i];
    memset((char *)cfg + k->offset, 0, k->size);
    if (k->def) apply_default(cfg, k);
    cfg->origin[i] = CFG_FROM_DEFAULT;
    cfg->line[i] = 0;
}

/* Internal consistency of the table; runs once. */
static void check_table(void)
{
    static int checked = 0;
    if (checked) return;
    for (int i = 0; i < CFG_KEY_COUNT; i++) {
        const ConfigKey *k = &g_keys[i];
        UL_CHECK(k->def || (k->flags & CFG_REQUIRED) || is_split_key(k),
                 "config key %s has no default but is neither required nor part of the forget split", k->path);
        UL_CHECK(!(k->def && (k->flags & CFG_REQUIRED)), "config key %s is required but has a default", k->path);
        UL_CHECK(k->min <= k->max, "config key %s: min > max", k->path);
        UL_CHECK(key_index(k->path) == i, "config key %s appears twice", k->path);
        if (k->kind == CFG_ENUM) {
            UL_CHECK(k->size == sizeof(int), "config key %s: enum field is not int-sized", k->path);
            UL_CHECK(k->names && k->names[0], "config key %s: no enum names", k->path);
        }
        if (k->kind == CFG_INT) UL_CHECK(k->size == sizeof(int), "config key %s: field is not an int", k->path);
        if (k->kind == CFG_INT64) UL_CHECK(k->size == sizeof(int64_t), "config key %s: field is not int64", k->path);
        if (k->kind == CFG_DOUBLE) UL_CHECK(k->size == sizeof(double), "config key %s: field is not a double", k->path);
    }
    /* Every enum's names fill its range: enum_count stops at the first NULL, so a hole shows as a short count. */
    const struct { const char *const *names; int count; const char *what; } enums[] = {
        {cfg_names_Augment, AUGMENT_COUNT, "Augment"},   {cfg_names_Arch, ARCH_COUNT, "Arch"},
        {cfg_names_DistMode, DIST_MODE_COUNT, "DistMode"}, {cfg_names_TrainOn, TRAIN_ON_COUNT, "TrainOn"},
        {cfg_names_Method, METHOD_COUNT, "Method"},      {cfg_names_MaskKind, MASK_COUNT, "MaskKind"},
        {cfg_names_ResumeMode, RESUME_COUNT, "ResumeMode"}, {cfg_names_OptimKind, OPTIM_KIND_COUNT, "OptimKind"},
        {cfg_names_SchedKind, SCHED_KIND_COUNT, "SchedKind"},
    };
    for (size_t e = 0; e < sizeof enums / sizeof enums[0]; e++) {
        int n = 0;
        while (enums[e].names[n]) n++;
        UL_CHECK(n == enums[e].count, "enum %s: %d names for %d values", enums[e].what, n, enums[e].count);
    }
    checked = 1;
}

void config_defaults(Config *cfg)
{
    check_table();
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < CFG_KEY_COUNT; i++) clear_key(cfg, i);
}

/* ---- resolution: ${...}, required keys, the split ---------------------------------------------------------- */

/* The value of a non-list key as text (no quotes), for ${key} expansion and the resolved file. */
static void format_scalar(const Config *cfg, const ConfigKey *k, char *buf, size_t cap)
{
    const char *field = (const char *)cfg + k->offset;
    switch (k->kind) {
    case CFG_INT: snprintf(buf, cap, "%d", *(const int *)field); return;
    case CFG_INT64: snprintf(buf, cap, "%lld", (long long)*(const int64_t *)field); return;
    case CFG_BOOL: snprintf(buf, cap, "%s", *(const bool *)field ? "true" : "false"); return;
    case CFG_STRING: snprintf(buf, cap, "%s", field); return;
    case CFG_ENUM: snprintf(buf, cap, "%s", k->names[*(const int *)field]); return;
    case CFG_DOUBLE: {
        double v = *(const double *)field;
        for (int prec = 1; prec <= 17; prec++) { /* the shortest text that reads back as the same double */
            snprintf(buf, cap, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) return;
        }
        return;
    }
    case CFG_INTS:
    case CFG_FLOATS: break;
    }
    UL_CHECK(0, "format_scalar: %s is a list", k->path);
}

/* Expands ${key} and ${env:VAR} in `in` into out (cap bytes); depth guards against cycles. */
static bool expand(const Config *cfg, const char *key_path, const char *in, char *out, size_t cap, int depth,
                   const char *where, UlError *err)
{
    size_t used = 0;
    for (const char *p = in; *p;) {
        const char *piece = p;
        size_t piece_len = 1;
        char tmp[CFG_STRING_MAX];
        if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p + 2, '}');
            if (!close) {
                ul_error_set(err, "%s: %s: '${' without a closing '}' in \"%s\"", where, key_path, in);
                return false;
            }
            char name[256];
            size_t n = (size_t)(close - (p + 2));
            if (n == 0 || n >= sizeof name) {
                ul_error_set(err, "%s: %s: bad reference '%.*s' in \"%s\"", where, key_path, (int)(close - p + 1), p,
                             in);
                return false;
            }
            memcpy(name, p + 2, n);
            name[n] = '\0';
            if (strncmp(name, "env:", 4) == 0) {
                const char *v = getenv(name + 4);
                if (!v) {
                    ul_error_set(err, "%s: %s: environment variable %s (in \"%s\") is not set", where, key_path,
                                 name + 4, in);
                    return false;
                }
                snprintf(tmp, sizeof tmp, "%s", v);
            } else {
                const ConfigKey *ref = config_find_key(name);
                if (!ref || ref->kind == CFG_INTS || ref->kind == CFG_FLOATS) {
                    char hint[600] = "";
                    if (!ref) suggest_key(name, hint, sizeof hint);
                    ul_error_set(err, "%s: %s: '${%s}' in \"%s\" names %s%s", where, key_path, name, in,
                                 ref ? "a list, which cannot be inserted into a string" : "no key", hint);
                    return false;
                }
                if (ref->kind == CFG_STRING) {
                    if (depth >= 8) {
                        ul_error_set(err, "%s: %s: references nest too deeply (a cycle through '${%s}'?)", where,
                                     key_path, name);
                        return false;
                    }
                    if (!expand(cfg, key_path, (const char *)cfg + ref->offset, tmp, sizeof tmp, depth + 1, where, err))
                        return false;
                } else {
                    format_scalar(cfg, ref, tmp, sizeof tmp);
                }
            }
            piece = tmp;
            piece_len = strlen(tmp);
            p = close + 1;
        } else {
            p++;
        }
        if (used + piece_len >= cap) {
            ul_error_set(err, "%s: %s: longer than %zu bytes after expanding \"%s\"", where, key_path, cap - 1, in);
            return false;
        }
        memcpy(out + used, piece, piece_len);
        used += piece_len;
    }
    out[used] = '\0';
    return true;
}

static bool resolve(Config *cfg, const char *display, UlError *err)
{
    char where[CFG_STRING_MAX + 64];
    /* required keys: given, and strings not empty */
    for (int i = 0; i < CFG_KEY_COUNT; i++) {
        const ConfigKey *k = &g_keys[i];
        if (!(k->flags & CFG_REQUIRED)) continue;
        if (cfg->origin[i] == CFG_FROM_DEFAULT) {
            ul_error_set(err, "%s: missing required key '%s' (%s)", display, k->path, k->help);
            return false;
        }
        if (k->kind == CFG_STRING && !((const char *)cfg + k->offset)[0]) {
            ul_error_set(err, "%s: %s is empty (%s)", config_where(cfg, k->path, where, sizeof where), k->path,
                         k->help);
            return false;
        }
    }
    /* ${...} in strings: expand every string from the unexpanded values, then store */
    Config *expanded = UL_MALLOC(sizeof *expanded);
    memcpy(expanded, cfg, sizeof *cfg);
    bool ok = true;
    for (int i = 0; i < CFG_KEY_COUNT && ok; i++) {
        const ConfigKey *k = &g_keys[i];
        if (k->kind != CFG_STRING) continue;
        config_where(cfg, k->path, where, sizeof where);
        ok = expand(cfg, k->path, (const char *)cfg + k->offset, (char *)expanded + k->offset, k->size, 0, where, err);
    }
    if (ok) memcpy(cfg, expanded, sizeof *cfg);
    free(expanded);
    if (!ok) return false;

    /* the forget split */
    SplitSpec *s = &cfg->split;
    memset(s, 0, sizeof *s);
    int ic = key_index("forget.classes"), ifr = key_index("forget.fraction"), iix = key_index("forget.indices");
    int isd = key_index("forget.seed");
    if (cfg->origin[ic] != CFG_FROM_DEFAULT) {
        config_where(cfg, "forget.classes", where, sizeof where);
        const CfgIntList *c = &cfg->forget.classes;
        if (c->n == 0) {
            ul_error_set(err, "%s: forget.classes is empty", where);
            return false;
        }
        if (c->n > SPLIT_MAX_CLASSES) {
            ul_error_set(err, "%s: forget.classes: more than %d classes", where, SPLIT_MAX_CLASSES);
            return false;
        }
        for (int a = 0; a < c->n; a++)
            for (int b = 0; b < a; b++)
                if (c->v[a] == c->v[b]) {
                    ul_error_set(err, "%s: forget.classes: class %d is listed twice", where, c->v[a]);
                    return false;
                }
        s->kind = SPLIT_CLASSES;
        s->nclasses = c->n;
        memcpy(s->classes, c->v, (size_t)c->n * sizeof(int));
    } else if (cfg->origin[ifr] != CFG_FROM_DEFAULT) {
        s->kind = SPLIT_FRACTION;
        s->fraction = cfg->forget.fraction;
        s->seed = (uint64_t)cfg->forget.seed;
    } else if (cfg->origin[iix] != CFG_FROM_DEFAULT) {
        config_where(cfg, "forget.indices", where, sizeof where);
        if (!cfg->forget.indices[0]) {
            ul_error_set(err, "%s: forget.indices is empty (give a file of train indices)", where);
            return false;
        }
        if (!ul_strlcpy(s->indices_path, cfg->forget.indices, sizeof s->indices_path)) {
            ul_error_set(err, "%s: forget.indices: the path is longer than %d bytes", where, SPLIT_PATH_MAX - 1);
            return false;
        }
        s->kind = SPLIT_INDICES;
    }
    if (cfg->origin[isd] != CFG_FROM_DEFAULT && s->kind != SPLIT_FRACTION) {
        config_where(cfg, "forget.seed", where, sizeof where);
        ul_error_set(err, "%s: forget.seed applies only to forget.fraction%s", where,
                     s->kind == SPLIT_NONE ? " (no forget.fraction is given)" : "");
        return false;
    }
    return true;
}

static bool finish_load(Config *cfg, const char *display, int nset, char *const *sets, UlError *err)
{
    for (int i = 0; i < nset; i++)
        if (!apply_set(cfg, sets[i], i, err)) return false;
    if (!resolve(cfg, display, err)) return false;
    char *text = config_to_yaml(cfg);
    sha256_hex_of(text, strlen(text), cfg->sha256);
    free(text);
    return true;
}

bool config_load_text(Config *cfg, const char *display, const char *text, size_t len, int nset, char *const *sets,
                      UlError *err)
{
    config_defaults(cfg);
    if (!ul_strlcpy(cfg->job_path, display, sizeof cfg->job_path)) {
        ul_error_set(err, "%.100s...: the job file's path is longer than %d bytes", display, CFG_STRING_MAX - 1);
        return false;
    }
    if (memchr(text, '\0', len)) {
        ul_error_set(err, "%s: not a text file (contains a NUL byte)", display);
        return false;
    }
    yaml_document_t doc;
    if (!load_document(display, "YAML", text, len, &doc, err)) return false;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    bool ok = true;
    if (root && !node_is_null(root)) {
        if (root->type != YAML_MAPPING_NODE) {
            ul_error_set(err, "%s:%zu: expected a mapping of keys (key: value lines) at the top level, got %s", display,
                         root->start_mark.line + 1, node_kind_name(root));
            ok = false;
        } else {
            Source src = {.display = display, .is_set = false, .set_index = -1};
            ok = apply_mapping(cfg, &src, "", &doc, root, err);
        }
    }
    yaml_document_delete(&doc);
    return ok && finish_load(cfg, display, nset, sets, err);
}

bool config_load(Config *cfg, const char *path, int nset, char *const *sets, UlError *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ul_error_set(err, "%s: cannot open the job file: %s", path, strerror(errno));
        return false;
    }
    size_t cap = 1 << 16, len = 0;
    char *text = UL_MALLOC(cap);
    for (;;) {
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
        if (len == cap) {
            if (cap >= ((size_t)16 << 20)) {
                ul_error_set(err, "%s: the job file is larger than 16 MiB; is it really a job file?", path);
                fclose(f);
                free(text);
                return false;
            }
            cap *= 2;
            text = UL_REALLOC(text, cap);
        }
    }
    bool read_ok = !ferror(f);
    int saved = errno;
    fclose(f);
    if (!read_ok) {
        ul_error_set(err, "%s: cannot read the job file: %s", path, strerror(saved));
        free(text);
        return false;
    }
    bool ok = config_load_text(cfg, path, text, len, nset, sets, err);
    free(text);
    return ok;
}

/* ---- output ---------------------------------------------------------------------------------------------------- */

typedef struct Buf {
    char *p;
    size_t len, cap;
} Buf;

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        UL_CHECK(w >= 0, "vsnprintf failed");
        if ((size_t)w < b->cap - b->len) {
            b->len += (size_t)w;
            return;
        }
        b->cap = ul_add_size(ul_mul_size(b->cap, 2), (size_t)w);
        b->p = UL_REALLOC(b->p, b->cap);
    }
}

/* A YAML double-quoted string. */
static void buf_quoted(Buf *b, const char *s)
{
    buf_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') buf_printf(b, "\\%c", *p);
        else if (*p == '\n') buf_printf(b, "\\n");
        else if (*p == '\t') buf_printf(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f) buf_printf(b, "\\x%02x", *p);
        else buf_printf(b, "%c", *p);
    }
    buf_printf(b, "\"");
}

static void buf_value(Buf *b, const Config *cfg, const ConfigKey *k)
{
    const char *field = (const char *)cfg + k->offset;
    char tmp[64];
    if (k->kind == CFG_STRING) {
        buf_quoted(b, field);
    } else if (k->kind == CFG_INTS || k->kind == CFG_FLOATS) {
        const CfgIntList *il = (const CfgIntList *)field;
        const CfgFloatList *fl = (const CfgFloatList *)field;
        int n = k->kind == CFG_INTS ? il->n : fl->n;
        buf_printf(b, "[");
        for (int i = 0; i < n; i++) {
            if (k->kind == CFG_INTS) {
                buf_printf(b, "%s%d", i ? ", " : "", il->v[i]);
            } else {
                for (int prec = 1; prec <= 17; prec++) {
                    snprintf(tmp, sizeof tmp, "%.*g", prec, fl->v[i]);
                    if (strtod(tmp, NULL) == fl->v[i]) break;
                }
                buf_printf(b, "%s%s", i ? ", " : "", tmp);
            }
        }
        buf_printf(b, "]");
    } else {
        char text[CFG_STRING_MAX];
        format_scalar(cfg, k, text, sizeof text);
        buf_printf(b, "%s", text);
    }
}

char *config_to_yaml(const Config *cfg)
{
    Buf b = {UL_MALLOC(4096), 0, 4096};
    b.p[0] = '\0';
    buf_printf(&b, "# unlearn: the resolved job (every key; defaults filled in)\n");
    char section[64] = "";
    bool split_given = cfg->split.kind != SPLIT_NONE;
    for (int i = 0; i < CFG_KEY_COUNT; i++) {
        const ConfigKey *k = &g_keys[i];
        if (is_split_key(k)) {
            if (!split_given || cfg->origin[i] == CFG_FROM_DEFAULT) {
                /* of the split only the given kind, and the seed of a fraction (default or not) */
                if (!(strcmp(k->path, "forget.seed") == 0 && cfg->split.kind == SPLIT_FRACTION)) continue;
            }
        }
        const char *dot = strchr(k->path, '.');
        char sec[64] = "";
        if (dot) snprintf(sec, sizeof sec, "%.*s", (int)(dot - k->path), k->path);
        if (strcmp(sec, section) != 0) {
            snprintf(section, sizeof section, "%s", sec);
            if (*sec) buf_printf(&b, "%s:\n", sec);
        }
        buf_printf(&b, "%s%s: ", *sec ? "  " : "", last_component(k->path));
        buf_value(&b, cfg, k);
        buf_printf(&b, "\n");
    }
    return b.p;
}

bool config_write_resolved(const Config *cfg, const char *path, UlError *err)
{
    char tmp[CFG_STRING_MAX + 16];
    int w = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (w < 0 || (size_t)w >= sizeof tmp) {
        ul_error_set(err, "%s: path too long", path);
        return false;
    }
    char *text = config_to_yaml(cfg);
    size_t len = strlen(text);
    FILE *f = fopen(tmp, "wb");
    bool ok = f != NULL;
    if (!ok) ul_error_set(err, "%s: cannot create: %s", tmp, strerror(errno));
    if (ok && fwrite(text, 1, len, f) != len) {
        ul_error_set(err, "%s: write failed: %s", tmp, strerror(errno));
        ok = false;
    }
    if (f && fclose(f) != 0 && ok) {
        ul_error_set(err, "%s: close failed: %s", tmp, strerror(errno));
        ok = false;
    }
    if (ok && rename(tmp, path) != 0) {
        ul_error_set(err, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        ok = false;
    }
    if (!ok && f) remove(tmp);
    free(text);
    return ok;
}

const char *config_where(const Config *cfg, const char *path, char *buf, size_t cap)
{
    int i = key_index(path);
    UL_CHECK(i >= 0, "config_where: unknown key '%s'", path);
    if (cfg->origin[i] == CFG_FROM_FILE) snprintf(buf, cap, "%s:%d", cfg->job_path, cfg->line[i]);
    else if (cfg->origin[i] == CFG_FROM_SET) snprintf(buf, cap, "--set %s", path);
    else snprintf(buf, cap, "%s: default of %s", cfg->job_path, path);
    return buf;
}

bool config_same_on_all_ranks(const Config *cfg, UlError *err)
{
    char *mine = config_to_yaml(cfg);
    int64_t len = (int64_t)strlen(mine);
    dist_bcast(&len, sizeof len, 0);
    char *root = UL_MALLOC(ul_add_size((size_t)len, 1));
    if (dist_rank() == 0) memcpy(root, mine, (size_t)len);
    dist_bcast(root, (size_t)len, 0);
    root[len] = '\0';
    bool same = strcmp(root, mine) == 0;
    if (!same) {
        /* the first differing line */
        const char *a = root, *b = mine;
        int line = 1;
        while (*a && *a == *b) {
            if (*a == '\n') line++;
            a++, b++;
        }
        while (a > root && a[-1] != '\n') a--;
        while (b > mine && b[-1] != '\n') b--;
        int la = (int)strcspn(a, "\n"), lb = (int)strcspn(b, "\n");
        ul_error_set(err,
                     "%s: the resolved job differs from rank 0's at line %d: '%.*s' here, '%.*s' on rank 0 "
                     "(different job files, environment variables or unlearn builds?)",
                     cfg->job_path, line, lb > 200 ? 200 : lb, b, la > 200 ? 200 : la, a);
    }
    free(root);
    free(mine);
    return same;
}

static bool positive_env(const char *name, int *out, UlError *err)
{
    const char *v = getenv(name);
    if (!v || !*v) return false;
    char first[64];
    snprintf(first, sizeof first, "%.*s", (int)strcspn(v, ","), v); /* OMP_NUM_THREADS may be a list: "4,2" */
    int64_t n = 0;
    if (parse_int64_text(first, &n) != 1 || n < 1 || n > 4096) {
        ul_error_set(err, "environment variable %s='%s' is not a thread count in [1, 4096]", name, v);
        return false;
    }
    *out = (int)n;
    return true;
}

int config_threads(const Config *cfg, const char **source, UlError *err)
{
    static const char *const vars[] = {"SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"};
    if (cfg->runtime.threads > 0) {
        if (source) *source = "runtime.threads";
        return cfg->runtime.threads;
    }
    for (int i = 0; i < 2; i++) {
        int n = 0;
        if (positive_env(vars[i], &n, err)) {
            if (source) *source = vars[i];
            return n;
        }
        if (err->failed) return 0;
    }
    if (source) *source = "default";
    return 1;
}

void config_print_keys(FILE *out)
{
    fprintf(out, "%-26s %-10s %-22s %s\n", "key", "type", "default", "meaning");
    for (int i = 0; i < CFG_KEY_COUNT; i++) {
        const ConfigKey *k = &g_keys[i];
        char def[64], range[96] = "";
        snprintf(def, sizeof def, "%s", k->flags & CFG_REQUIRED ? "(required)" : k->def ? k->def : "(none)");
        if (k->kind == CFG_INT || k->kind == CFG_INT64 || k->kind == CFG_DOUBLE || k->kind == CFG_INTS ||
            k->kind == CFG_FLOATS) {
            char lo[40], hi[40];
            format_bound(k->min, lo, sizeof lo);
            format_bound(k->max, hi, sizeof hi);
            snprintf(range, sizeof range, " %c%s, %s%c", (k->flags & CFG_OPEN_MIN) ? '(' : '[', lo, hi,
                     (k->flags & CFG_OPEN_MAX) ? ')' : ']');
        }
        fprintf(out, "%-26s %-10s %-22s %s%s\n", k->path, kind_name(k->kind), def, k->help, range);
    }
}
