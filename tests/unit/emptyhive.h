/* emptyhive.h - an empty Windows registry hive ("regf", one root key), for
 * tests: hivex cannot create a hive and no Debian package ships one, so the
 * Windows OS-morphing tests write one from the format's documentation and
 * fill it with hivexregedit --merge. */
#ifndef EK_TEST_EMPTYHIVE_H
#define EK_TEST_EMPTYHIVE_H

/* Writes the hive to path (0644); 0, or -1 with a message on stderr. */
int ek_test_empty_hive_write(const char *path);

#endif
