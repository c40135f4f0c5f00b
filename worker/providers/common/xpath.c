/* xpath.c - XPath reads over libxml2 (see xpath.h). */
#include "worker/providers/common/xpath.h"

#include <string.h>
#include "common/mem.h"

char *ek_xp_string(xmlXPathContextPtr xp, xmlNodePtr node, const char *expr)
{
    xp->node = node;
    _cleanup_free_ char *full = ek_xasprintf("string(%s)", expr);
    xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST full, xp);
    char *s = NULL;
    if (o && o->type == XPATH_STRING && o->stringval && *o->stringval) {
        const char *b = (const char *)o->stringval, *e = b + strlen(b);
        while (*b && strchr(" \t\r\n\v\f", *b))
            b++;
        while (e > b && strchr(" \t\r\n\v\f", e[-1]))
            e--;
        if (e > b)
            s = ek_xstrndup(b, (size_t)(e - b));
    }
    xmlXPathFreeObject(o);
    return s;
}

xmlXPathObjectPtr ek_xp_nodes(xmlXPathContextPtr xp, xmlNodePtr node, const char *expr)
{
    xp->node = node;
    xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST expr, xp);
    if (o && o->type != XPATH_NODESET) {
        xmlXPathFreeObject(o);
        return NULL;
    }
    return o;
}

size_t ek_xp_count(xmlXPathObjectPtr set)
{
    return set && set->nodesetval ? (size_t)set->nodesetval->nodeNr : 0;
}
