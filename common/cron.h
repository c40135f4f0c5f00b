/* cron.h - five-field cron expressions (minute hour day-of-month month
 * day-of-week) with '*', lists, ranges and steps, as transfer schedules use
 * them: {"minute": "0,30", "hour": "1-5", "dom": "*", "month": "*", "dow": "1,3"}.
 * Day-of-week 0 and 7 are Sunday. As in cron, when both day fields are
 * restricted a day matches if either does. */
#ifndef EK_CRON_H
#define EK_CRON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "common/error.h"

typedef struct ek_cron {
    uint64_t minute; /* bit n set: minute n matches */
    uint32_t hour;
    uint32_t dom;   /* bits 1..31 */
    uint16_t month; /* bits 1..12 */
    uint8_t dow;    /* bits 0..6 */
    bool dom_any, dow_any;
} ek_cron_t;

/* Parses one field (a star, 5, 1-5, star-slash-15, 1,2,10-20/5); name is for messages. */
EK_ERR_CHECK ek_cron_parse_field(const char *text, int lo, int hi, const char *name,
                                 uint64_t *bits);
/* Reads {minute, hour, dom, month, dow} (strings or integers; a missing field is "*"). */
EK_ERR_CHECK ek_cron_from_json(json_object *schedule, const char *path, ek_cron_t *out);
/* True when the minute of t (UTC) matches. */
bool ek_cron_matches(const ek_cron_t *cron, time_t t);

#endif
