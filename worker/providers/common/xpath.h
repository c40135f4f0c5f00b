/* xpath.h - the XPath reads of the providers' XML readers (libvirt domain
 * XML: domxml.c; OVF descriptors: ova/ovf.c), over libxml2. */
#ifndef EK_PROVIDERS_COMMON_XPATH_H
#define EK_PROVIDERS_COMMON_XPATH_H

#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <stddef.h>

/* The string value of expr relative to node, trimmed of white space, or
 * NULL when empty (malloc'ed). */
char *ek_xp_string(xmlXPathContextPtr xp, xmlNodePtr node, const char *expr);
/* The node set expr selects relative to node (xmlXPathFreeObject), or NULL
 * when it selects no node set. */
xmlXPathObjectPtr ek_xp_nodes(xmlXPathContextPtr xp, xmlNodePtr node, const char *expr);
/* The number of nodes of a node set (0 for NULL). */
size_t ek_xp_count(xmlXPathObjectPtr set);

#endif
