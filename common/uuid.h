/* uuid.h - random (version 4) UUIDs, the ids of every Ekman object. */
#ifndef EK_UUID_H
#define EK_UUID_H

#include <stdbool.h>

#define EK_UUID_STRLEN 36

/* Writes a new lowercase UUID v4 and its NUL into out (37 bytes). */
void ek_uuid_generate(char out[EK_UUID_STRLEN + 1]);
/* Returns a newly allocated UUID string. */
char *ek_uuid_new(void);
/* True when s is a UUID in canonical 8-4-4-4-12 hexadecimal form. */
bool ek_uuid_is_valid(const char *s);

#endif
