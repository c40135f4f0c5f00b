/* routes.h - every REST route handler of the conductor, grouped by file. */
#ifndef EK_CONDUCTOR_ROUTES_H
#define EK_CONDUCTOR_ROUTES_H

#include "conductor/api.h"

/* r_auth.c: tokens, users, projects */
void r_tokens_create(ek_req_t *req, ek_resp_t *resp);
void r_users_list(ek_req_t *req, ek_resp_t *resp);
void r_users_create(ek_req_t *req, ek_resp_t *resp);
void r_users_delete(ek_req_t *req, ek_resp_t *resp);
void r_users_update(ek_req_t *req, ek_resp_t *resp);
void r_projects_list(ek_req_t *req, ek_resp_t *resp);
void r_projects_create(ek_req_t *req, ek_resp_t *resp);

/* r_keystone.c: the Keystone v3 identity facade (/v3) */
void r_ks_version(ek_req_t *req, ek_resp_t *resp);
void r_ks_tokens_create(ek_req_t *req, ek_resp_t *resp);
void r_ks_tokens_show(ek_req_t *req, ek_resp_t *resp);
void r_ks_tokens_delete(ek_req_t *req, ek_resp_t *resp);
void r_ks_catalog(ek_req_t *req, ek_resp_t *resp);
void r_ks_projects(ek_req_t *req, ek_resp_t *resp);
void r_ks_user_show(ek_req_t *req, ek_resp_t *resp);
void r_ks_user_projects(ek_req_t *req, ek_resp_t *resp);
void r_ks_role_assignments(ek_req_t *req, ek_resp_t *resp);

/* r_system.c: providers, regions, services, minion pools, diagnostics */
void r_providers_list(ek_req_t *req, ek_resp_t *resp);
void r_provider_schema(ek_req_t *req, ek_resp_t *resp);
void r_regions_list(ek_req_t *req, ek_resp_t *resp);
void r_regions_create(ek_req_t *req, ek_resp_t *resp);
void r_regions_show(ek_req_t *req, ek_resp_t *resp);
void r_regions_update(ek_req_t *req, ek_resp_t *resp);
void r_regions_delete(ek_req_t *req, ek_resp_t *resp);
void r_services_list(ek_req_t *req, ek_resp_t *resp);
void r_services_create(ek_req_t *req, ek_resp_t *resp);
void r_services_show(ek_req_t *req, ek_resp_t *resp);
void r_services_update(ek_req_t *req, ek_resp_t *resp);
void r_services_delete(ek_req_t *req, ek_resp_t *resp);
void r_pools_list(ek_req_t *req, ek_resp_t *resp);
void r_pools_create(ek_req_t *req, ek_resp_t *resp);
void r_pools_show(ek_req_t *req, ek_resp_t *resp);
void r_pools_update(ek_req_t *req, ek_resp_t *resp);
void r_pools_delete(ek_req_t *req, ek_resp_t *resp);
void r_diagnostics(ek_req_t *req, ek_resp_t *resp);

/* r_endpoints.c */
void r_endpoints_list(ek_req_t *req, ek_resp_t *resp);
void r_endpoints_create(ek_req_t *req, ek_resp_t *resp);
void r_endpoints_show(ek_req_t *req, ek_resp_t *resp);
void r_endpoints_show_id(ek_req_t *req, ek_resp_t *resp, const char *id, unsigned status);
void r_endpoints_update(ek_req_t *req, ek_resp_t *resp);
void r_endpoints_delete(ek_req_t *req, ek_resp_t *resp);
void r_endpoints_action(ek_req_t *req, ek_resp_t *resp);
void r_endpoints_instances(ek_req_t *req, ek_resp_t *resp);
void r_endpoints_instance(ek_req_t *req, ek_resp_t *resp);
void r_endpoints_networks(ek_req_t *req, ek_resp_t *resp);
void r_endpoints_storage(ek_req_t *req, ek_resp_t *resp);
void r_endpoints_dest_options(ek_req_t *req, ek_resp_t *resp);
void r_endpoints_source_options(ek_req_t *req, ek_resp_t *resp);

/* r_transfers.c: transfers and their schedules */
void r_transfers_list(ek_req_t *req, ek_resp_t *resp);
void r_transfers_create(ek_req_t *req, ek_resp_t *resp);
void r_transfers_show(ek_req_t *req, ek_resp_t *resp);
void r_transfers_update(ek_req_t *req, ek_resp_t *resp);
void r_transfers_delete(ek_req_t *req, ek_resp_t *resp);
void r_transfers_action(ek_req_t *req, ek_resp_t *resp);
void r_schedules_list(ek_req_t *req, ek_resp_t *resp);
void r_schedules_create(ek_req_t *req, ek_resp_t *resp);
void r_schedules_show(ek_req_t *req, ek_resp_t *resp);
void r_schedules_update(ek_req_t *req, ek_resp_t *resp);
void r_schedules_delete(ek_req_t *req, ek_resp_t *resp);

/* r_executions.c: transfer executions and deployments */
void r_executions_list(ek_req_t *req, ek_resp_t *resp);
void r_executions_create(ek_req_t *req, ek_resp_t *resp);
void r_executions_show(ek_req_t *req, ek_resp_t *resp);
void r_executions_delete(ek_req_t *req, ek_resp_t *resp);
void r_executions_action(ek_req_t *req, ek_resp_t *resp);
void r_deployments_list(ek_req_t *req, ek_resp_t *resp);
void r_deployments_create(ek_req_t *req, ek_resp_t *resp);
void r_deployments_show(ek_req_t *req, ek_resp_t *resp);
void r_deployments_delete(ek_req_t *req, ek_resp_t *resp);
void r_deployments_action(ek_req_t *req, ek_resp_t *resp);

/* metrics.c */
void r_metrics(ek_req_t *req, ek_resp_t *resp);

#endif
