//! The build-like workload: a small C project (headers, 30 modules, a link) generated
//! in the bench's directory and built with `make -j2`. A build is the everyday mix the
//! hooks must not slow down: many execs, header opens, mmaps of shared libraries.

use std::{fmt::Write as _, fs, path::Path};

const MODULES: usize = 30;

const MAKEFILE: &str = "\
CC = gcc
CFLAGS = -O2 -Wall
OBJS := $(patsubst %.c,%.o,$(wildcard *.c))

app: $(OBJS)
\t$(CC) -o $@ $(OBJS) -lm

%.o: %.c common.h
\t$(CC) $(CFLAGS) -c $< -o $@

clean:
\trm -f app $(OBJS)
";

const COMMON_H: &str = "\
#ifndef COMMON_H
#define COMMON_H
#include <stddef.h>
struct record { int id; double weight; char name[32]; };
int compare_records(const void *a, const void *b);
#endif
";

/// One module (`@` stands for its number): a few functions with loops, a qsort and some floating point, so that
/// the compiler does real work (about 0.1 s per file at -O2).
const MODULE_C: &str = "\
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include \"common.h\"
#include \"mod@.h\"

static struct record table_@[256];

static unsigned hash_@(const char *s) {
    unsigned h = @;
    while (*s) h = h * 31u + (unsigned char)*s++;
    return h;
}

static double spread_@(const struct record *r, size_t n) {
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; i++) mean += r[i].weight;
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) var += (r[i].weight - mean) * (r[i].weight - mean);
    return sqrt(var / (double)n);
}

static void fill_@(void) {
    for (int i = 0; i < 256; i++) {
        table_@[i].id = i * @;
        table_@[i].weight = sin((double)(i + @)) * 100.0;
        snprintf(table_@[i].name, sizeof table_@[i].name, \"mod%d-%d\", @, i);
    }
}

int mod@_run(void) {
    fill_@();
    qsort(table_@, 256, sizeof table_@[0], compare_records);
    unsigned acc = 0;
    for (int i = 0; i < 256; i++) acc ^= hash_@(table_@[i].name);
    char line[64];
    snprintf(line, sizeof line, \"%u %.3f\", acc, spread_@(table_@, 256));
    return (int)strlen(line);
}
";

const MAIN_C: &str = "\
#include <stdio.h>
#include \"common.h\"

int compare_records(const void *a, const void *b) {
    const struct record *x = a, *y = b;
    return (x->weight > y->weight) - (x->weight < y->weight);
}
";

/// Writes the project into `dir`.
pub(crate) fn generate(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("Makefile"), MAKEFILE)?;
    fs::write(dir.join("common.h"), COMMON_H)?;
    let mut main = String::from(MAIN_C);
    let mut calls = String::new();
    for n in 0..MODULES {
        let header = format!("#ifndef MOD{n}_H\n#define MOD{n}_H\nint mod{n}_run(void);\n#endif\n");
        fs::write(dir.join(format!("mod{n}.h")), header)?;
        fs::write(dir.join(format!("mod{n}.c")), MODULE_C.replace('@', &n.to_string()))?;
        writeln!(main, "#include \"mod{n}.h\"")?;
        writeln!(calls, "    total += mod{n}_run();")?;
    }
    writeln!(
        main,
        "int main(void) {{\n    int total = 0;\n{calls}    printf(\"%d\\n\", total);\n    return 0;\n}}"
    )?;
    fs::write(dir.join("main.c"), main)?;
    Ok(())
}
