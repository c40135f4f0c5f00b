/* mkhive.c - ek-mkhive FILE: writes an empty Windows registry hive (for the
 * Windows OS-morphing tests, which fill it with hivexregedit --merge). */
#include <stdio.h>
#include "tests/unit/emptyhive.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ek-mkhive FILE\n");
        return 2;
    }
    return ek_test_empty_hive_write(argv[1]) == 0 ? 0 : 1;
}
