-- 001_initial.sql - Ekman's state: tenants, regions and services, endpoints,
-- transfers and deployments with their executions, tasks, events and progress,
-- schedules, minion pools. Model: research/coriolis.md section 2. Soft delete
-- (deleted_at) where Coriolis has it; jsonb for environments and task info.

CREATE TABLE projects (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    project_id    uuid NOT NULL REFERENCES projects(id),
    role          text NOT NULL CHECK (role IN ('admin', 'member')),
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz
);

-- Only a hash of each token is kept: a database dump does not hand out sessions.
CREATE TABLE tokens (
    token_hash  text PRIMARY KEY, -- SHA-256 hex
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id  uuid NOT NULL REFERENCES projects(id),
    is_admin    boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX tokens_expires ON tokens (expires_at);

CREATE TABLE regions (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz,
    deleted_at  timestamptz
);
CREATE UNIQUE INDEX regions_name ON regions (name) WHERE deleted_at IS NULL;

CREATE TABLE services (
    id             uuid PRIMARY KEY,
    host           text NOT NULL,
    binary_name    text NOT NULL,
    topic          text NOT NULL,
    enabled        boolean NOT NULL DEFAULT true,
    status         text NOT NULL DEFAULT 'UNKNOWN' CHECK (status IN ('UP', 'DOWN', 'UNKNOWN')),
    providers      jsonb NOT NULL DEFAULT '{}',
    specs          jsonb NOT NULL DEFAULT '{}',
    capacity       integer NOT NULL DEFAULT 1,
    running_tasks  integer NOT NULL DEFAULT 0,
    last_heartbeat timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz,
    deleted_at     timestamptz
);
CREATE UNIQUE INDEX services_host_binary ON services (host, binary_name) WHERE deleted_at IS NULL;

CREATE TABLE service_regions (
    service_id uuid NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    region_id  uuid NOT NULL REFERENCES regions(id) ON DELETE CASCADE,
    PRIMARY KEY (service_id, region_id)
);

CREATE TABLE endpoints (
    id              uuid PRIMARY KEY,
    project_id      uuid NOT NULL REFERENCES projects(id),
    user_id         uuid NOT NULL,
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    type            text NOT NULL,
    -- AES-256-GCM, "v1:" || base64(nonce || ciphertext || tag), the endpoint id as AAD
    connection_info text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz,
    deleted_at      timestamptz
);
CREATE UNIQUE INDEX endpoints_name ON endpoints (project_id, name) WHERE deleted_at IS NULL;

CREATE TABLE endpoint_regions (
    endpoint_id uuid NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    region_id   uuid NOT NULL REFERENCES regions(id) ON DELETE CASCADE,
    PRIMARY KEY (endpoint_id, region_id)
);

CREATE TABLE minion_pools (
    id                        uuid PRIMARY KEY,
    project_id                uuid NOT NULL REFERENCES projects(id),
    user_id                   uuid NOT NULL,
    name                      text NOT NULL,
    endpoint_id               uuid NOT NULL REFERENCES endpoints(id),
    platform                  text NOT NULL CHECK (platform IN ('source', 'destination')),
    os_type                   text NOT NULL CHECK (os_type IN ('linux', 'windows')),
    environment_options       jsonb NOT NULL DEFAULT '{}',
    minimum_minions           integer NOT NULL DEFAULT 1,
    maximum_minions           integer NOT NULL DEFAULT 1,
    minion_max_idle_time      integer NOT NULL DEFAULT 3600,
    minion_retention_strategy text NOT NULL DEFAULT 'delete'
                              CHECK (minion_retention_strategy IN ('delete', 'poweroff')),
    notes                     text NOT NULL DEFAULT '',
    status                    text NOT NULL DEFAULT 'DEALLOCATED',
    shared_resources          jsonb,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz,
    deleted_at                timestamptz
);

CREATE TABLE minion_machines (
    id                  uuid PRIMARY KEY,
    pool_id             uuid NOT NULL REFERENCES minion_pools(id),
    allocation_status   text NOT NULL DEFAULT 'UNINITIALIZED',
    allocated_action    uuid,
    power_status        text NOT NULL DEFAULT 'UNKNOWN',
    last_used_at        timestamptz,
    connection_info     text, -- encrypted like endpoints.connection_info
    provider_properties jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz,
    deleted_at          timestamptz
);

CREATE TABLE transfers (
    id                        uuid PRIMARY KEY,
    project_id                uuid NOT NULL REFERENCES projects(id),
    user_id                   uuid NOT NULL,
    scenario                  text NOT NULL DEFAULT 'replica'
                              CHECK (scenario IN ('replica', 'live_migration')),
    origin_endpoint_id        uuid NOT NULL REFERENCES endpoints(id),
    destination_endpoint_id   uuid NOT NULL REFERENCES endpoints(id),
    instances                 jsonb NOT NULL,
    source_environment        jsonb NOT NULL DEFAULT '{}',
    destination_environment   jsonb NOT NULL DEFAULT '{}',
    network_map               jsonb NOT NULL DEFAULT '{}',
    storage_mappings          jsonb NOT NULL DEFAULT '{}',
    user_scripts              jsonb NOT NULL DEFAULT '{}',
    origin_minion_pool_id     uuid REFERENCES minion_pools(id),
    destination_minion_pool_id uuid REFERENCES minion_pools(id),
    instance_osmorphing_minion_pool_mappings jsonb NOT NULL DEFAULT '{}',
    clone_disks               boolean NOT NULL DEFAULT true,
    skip_os_morphing          boolean NOT NULL DEFAULT false,
    notes                     text NOT NULL DEFAULT '',
    info                      jsonb NOT NULL DEFAULT '{}', -- {instance: task_info}
    last_execution_status     text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz,
    deleted_at                timestamptz
);

CREATE TABLE deployments (
    id                        uuid PRIMARY KEY,
    project_id                uuid NOT NULL REFERENCES projects(id),
    user_id                   uuid NOT NULL,
    transfer_id               uuid NOT NULL REFERENCES transfers(id),
    origin_endpoint_id        uuid NOT NULL REFERENCES endpoints(id),
    destination_endpoint_id   uuid NOT NULL REFERENCES endpoints(id),
    instances                 jsonb NOT NULL,
    source_environment        jsonb NOT NULL DEFAULT '{}',
    destination_environment   jsonb NOT NULL DEFAULT '{}',
    network_map               jsonb NOT NULL DEFAULT '{}',
    storage_mappings          jsonb NOT NULL DEFAULT '{}',
    user_scripts              jsonb NOT NULL DEFAULT '{}',
    instance_osmorphing_minion_pool_mappings jsonb NOT NULL DEFAULT '{}',
    clone_disks               boolean NOT NULL DEFAULT true,
    skip_os_morphing          boolean NOT NULL DEFAULT false,
    info                      jsonb NOT NULL DEFAULT '{}',
    transfer_result           jsonb,
    last_execution_status     text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz,
    deleted_at                timestamptz
);

CREATE TABLE executions (
    id                 uuid PRIMARY KEY,
    project_id         uuid NOT NULL REFERENCES projects(id),
    action_id          uuid NOT NULL,
    action_type        text NOT NULL CHECK (action_type IN ('transfer', 'deployment')),
    type               text NOT NULL CHECK (type IN ('transfer_execution', 'transfer_disks_delete',
                                                     'deployment', 'transfer_update')),
    number             integer NOT NULL,
    status             text NOT NULL,
    shutdown_instances boolean NOT NULL DEFAULT false,
    auto_deploy        boolean NOT NULL DEFAULT false,
    cancel_requested   boolean NOT NULL DEFAULT false,
    cancel_force       boolean NOT NULL DEFAULT false,
    failed             boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz,
    finished_at        timestamptz,
    deleted_at         timestamptz,
    UNIQUE (action_id, number)
);
CREATE INDEX executions_action ON executions (action_id);
CREATE INDEX executions_active ON executions (status) WHERE finished_at IS NULL;

CREATE TABLE tasks (
    id                uuid PRIMARY KEY,
    execution_id      uuid NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    instance          text NOT NULL,
    task_type         text NOT NULL,
    status            text NOT NULL,
    depends_on        uuid[] NOT NULL DEFAULT '{}',
    on_error          boolean NOT NULL DEFAULT false,
    on_error_only     boolean NOT NULL DEFAULT false,
    index             integer NOT NULL,
    params            jsonb NOT NULL DEFAULT '{}', -- e.g. {"incremental": true}
    host              text,
    process_id        integer,
    attempt_id        uuid,
    attempts          integer NOT NULL DEFAULT 0,
    dispatched_at     timestamptz,
    cancel_pending    boolean NOT NULL DEFAULT false, -- a task.cancel is still to be sent
    cancel_force      boolean NOT NULL DEFAULT false,
    started_at        timestamptz,
    finished_at       timestamptz,
    exception_details text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz
);
CREATE INDEX tasks_execution ON tasks (execution_id);
CREATE INDEX tasks_to_dispatch ON tasks (created_at) WHERE status = 'PENDING' AND dispatched_at IS NULL;
CREATE INDEX tasks_to_cancel ON tasks (created_at) WHERE cancel_pending;

CREATE TABLE task_events (
    id         bigserial PRIMARY KEY,
    task_id    uuid NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    message_id text UNIQUE, -- the AMQP message that carried it: a redelivery adds nothing
    level      text NOT NULL CHECK (level IN ('INFO', 'WARNING', 'ERROR', 'DEBUG')),
    index      integer NOT NULL DEFAULT 0,
    message    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_events_task ON task_events (task_id);

CREATE TABLE task_progress_updates (
    id           bigserial PRIMARY KEY,
    task_id      uuid NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    index        integer NOT NULL,
    current_step bigint NOT NULL DEFAULT 0,
    total_steps  bigint NOT NULL DEFAULT 0,
    message      text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz,
    UNIQUE (task_id, index)
);

CREATE TABLE transfer_schedules (
    id                uuid PRIMARY KEY,
    project_id        uuid NOT NULL REFERENCES projects(id),
    user_id           uuid NOT NULL,
    transfer_id       uuid NOT NULL REFERENCES transfers(id),
    schedule          jsonb NOT NULL,
    expiration_date   timestamptz,
    enabled           boolean NOT NULL DEFAULT true,
    shutdown_instance boolean NOT NULL DEFAULT false,
    auto_deploy       boolean NOT NULL DEFAULT false,
    last_fired_at     timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz,
    deleted_at        timestamptz
);
CREATE INDEX transfer_schedules_transfer ON transfer_schedules (transfer_id);

-- What a task needs from its transfer or deployment, whichever it belongs to.
CREATE VIEW actions AS
    SELECT id, 'transfer' AS action_type, project_id, user_id, origin_endpoint_id,
           destination_endpoint_id, instances, source_environment, destination_environment,
           network_map, storage_mappings, user_scripts, clone_disks, skip_os_morphing, info
      FROM transfers
    UNION ALL
    SELECT id, 'deployment', project_id, user_id, origin_endpoint_id, destination_endpoint_id,
           instances, source_environment, destination_environment, network_map,
           storage_mappings, user_scripts, clone_disks, skip_os_morphing, info
      FROM deployments;
