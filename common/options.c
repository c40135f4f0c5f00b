/* options.c - the catalogue of every configuration option Ekman reads.
 *
 * One row per option: section, name, type, default (as written in the file),
 * flags, choices, int range, help. The provider sections are the seeds'
 * [libvirt_migration_provider] and [ovirt_migration_provider] with the seeds'
 * defaults; an option listed here is shown by --check-config and may be
 * overridden per transfer in the destination environment. */
#include "common/config.h"

#define S(sec, name, def, help)                                                                    \
    {                                                                                              \
        sec, name, EK_OPT_STRING, def, 0, NULL, 0, 0, help                                         \
    }
#define SC(sec, name, def, choices, help)                                                          \
    {                                                                                              \
        sec, name, EK_OPT_STRING, def, 0, choices, 0, 0, help                                      \
    }
#define SECRET(sec, name, help)                                                                    \
    {                                                                                              \
        sec, name, EK_OPT_STRING, "", EK_OPT_SECRET, NULL, 0, 0, help                              \
    }
#define URL(sec, name, def, help)                                                                  \
    {                                                                                              \
        sec, name, EK_OPT_STRING, def, EK_OPT_URL_SECRET, NULL, 0, 0, help                         \
    }
#define I(sec, name, def, lo, hi, help)                                                            \
    {                                                                                              \
        sec, name, EK_OPT_INT, #def, 0, NULL, lo, hi, help                                         \
    }
#define B(sec, name, def, help)                                                                    \
    {                                                                                              \
        sec, name, EK_OPT_BOOL, def, 0, NULL, 0, 0, help                                           \
    }
#define L(sec, name, def, help)                                                                    \
    {                                                                                              \
        sec, name, EK_OPT_LIST, def, 0, NULL, 0, 0, help                                           \
    }
#define M(sec, name, def, flags, help)                                                             \
    {                                                                                              \
        sec, name, EK_OPT_MAP, def, flags, NULL, 0, 0, help                                        \
    }

#define LV "libvirt_migration_provider"
#define OV "ovirt_migration_provider"

const ek_opt_def_t ek_options[] = {
    /* [DEFAULT]: every process */
    SC("DEFAULT", "log_level", "info", "debug|info|warning|error",
       "Lowest level of log lines written."),
    SC("DEFAULT", "log_format", "text", "text|json",
       "One line of text, or one JSON object, per record."),
    S("DEFAULT", "log_file", "", "Append the log to this file instead of standard error."),
    SECRET("DEFAULT", "encryption_key",
           "Base64 of 32 random bytes: the AES-256-GCM key that encrypts endpoint connection info "
           "at rest."),
    S("DEFAULT", "encryption_key_file", "",
      "A file holding encryption_key (used when encryption_key is empty)."),
    S("DEFAULT", "state_dir", "/var/lib/ekman",
      "Directory for local state (temporary keys, certificates)."),

    /* [database]: PostgreSQL */
    URL("database", "connection", "postgresql://ekman@127.0.0.1:5432/ekman",
        "libpq connection URI."),
    I("database", "max_connections", 10, 1, 1000, "Connections each process keeps open."),
    I("database", "connect_timeout", 10, 1, 3600, "Seconds to wait for the database at start-up."),

    /* [messaging]: RabbitMQ */
    URL("messaging", "transport_url", "amqp://guest@127.0.0.1:5672/",
        "AMQP 0-9-1 broker URL (vhost as path): "
        "amqps://user:password@host:port/vhost?cacertfile=CA.pem verifies the broker's certificate "
        "against CA.pem (system CAs without it); amqp:// is plain TCP, credentials in clear: a "
        "trusted network only. Used by a daemon whose <role>_transport_url is empty."),
    URL("messaging", "conductor_transport_url", "",
        "Broker URL of ekman-conductor (its own broker user); empty: transport_url."),
    URL("messaging", "worker_transport_url", "",
        "Broker URL of ekman-worker (its own broker user); empty: transport_url."),
    URL("messaging", "scheduler_transport_url", "",
        "Broker URL of ekman-scheduler (its own broker user); empty: transport_url."),
    I("messaging", "heartbeat", 30, 0, 3600, "AMQP heartbeat in seconds (0 disables)."),
    I("messaging", "report_threads", 1, 1, 64,
      "Threads of each conductor that apply the workers' reports (each with its own database "
      "and broker connection); more may help where cores are to spare (on 2 cores it did not: "
      "docs/bench-conductor.md)."),
    I("messaging", "connect_timeout", 30, 1, 3600, "Seconds to wait for the broker at start-up."),
    B("messaging", "quorum_queues", "false", "Declare quorum queues (for a RabbitMQ cluster)."),
    I("messaging", "rpc_timeout", 60, 1, 86400,
      "Seconds to wait for a worker to answer an endpoint query."),

    /* [api]: the conductor's REST API */
    S("api", "listen_address", "127.0.0.1", "Address the REST API binds to."),
    I("api", "port", 7667, 1, 65535, "Port of the REST API."),
    I("api", "threads", 8, 1, 256, "Threads serving API requests."),
    I("api", "token_lifetime", 3600, 60, 31536000, "Seconds an authentication token stays valid."),
    I("api", "max_body_size", 1048576, 1024, 268435456, "Largest request body accepted, in bytes."),
    I("api", "max_transfer_instances", 1000, 1, 100000, "Most instances one transfer may name."),
    I("api", "login_threads", 2, 1, 64,
      "Threads that check passwords (scrypt), apart from the API threads."),
    SECRET("api", "metrics_token",
           "A bearer token that may read GET /metrics besides admins (for a scraper); empty: "
           "admins only."),
    S("api", "tls_cert_file", "", "PEM certificate for HTTPS (plain HTTP when empty)."),
    S("api", "tls_key_file", "", "PEM private key for HTTPS."),
    S("api", "public_url", "",
      "Base URL clients reach the API at (https://host:port), as the Keystone v3 facade's "
      "catalog gives it; empty: the scheme and the Host header of each request (else "
      "listen_address:port)."),
    S("api", "public_region", "RegionOne",
      "Region of the migration service in the Keystone v3 facade's catalog."),
    L("api", "cors_allowed_origins", "",
      "Web origins (scheme://host[:port], or * for any) whose browser pages may call the API "
      "(CORS, e.g. a web UI served elsewhere); empty: CORS off, no CORS headers."),
    L("api", "cors_allow_headers",
      "X-Auth-Token,X-Subject-Token,Content-Type,Accept,Authorization,OpenStack-API-Version,"
      "X-OpenStack-Request-ID",
      "Request headers an allowed origin's pages may send (a CORS preflight asking for "
      "another is refused)."),
    I("api", "cors_max_age", 3600, 0, 86400,
      "Seconds a browser may cache a CORS preflight's answer (Access-Control-Max-Age)."),

    /* [scheduler] */
    I("scheduler", "heartbeat_interval", 10, 1, 3600, "Seconds between worker heartbeats."),
    I("scheduler", "missed_heartbeats", 3, 1, 100,
      "Heartbeats a worker may miss before it is DOWN."),

    /* [worker] */
    S("worker", "host", "", "Name of this worker (default: the host name)."),
    S("worker", "region", "", "Region this worker serves (empty: any)."),
    L("worker", "providers", "local,libvirt,ovirt,ova", "Providers this worker loads."),
    I("worker", "capacity", 4, 1, 1024, "Tasks run at once."),
    I("worker", "task_stop_timeout", 300, 0, 86400,
      "Seconds running tasks get to finish on SIGTERM."),
    I("worker", "transfer_connections", 0, 0, 64,
      "Parallel data connections per disk (0: from the CPU count)."),
    I("worker", "compression_level", 3, 0, 19,
      "zstd level for disk data (0 turns compression off)."),
    I("worker", "bandwidth_limit", 0, 0, 1000000,
      "Data-plane bandwidth limit per transfer, MiB/s (0: none)."),
    I("worker", "transfer_save_every_mb", 64, 8, 65536,
      "A disk copy makes what the writer acknowledged durable (FLUSH) and saves it for a re-run "
      "after this much (MiB), or 5 s: what a re-run after a crash may send again."),
    S("worker", "tmp_dir", "/var/tmp",
      "Directory for temporary files: each task process works in a 0700 directory of its own "
      "here, removed when it ends (private keys are written 0600)."),
    L("worker", "download_schemes", "https",
      "URL schemes a worker downloads from (windows_virtio_iso_url, windows_virtio_zip_url, which "
      "a tenant's environment can set): https by default; add http or file only on a trusted "
      "network."),
    I("worker", "download_max_mb", 4096, 1, 1048576, "Largest file a worker downloads (MiB)."),
    S("worker", "key_file", "",
      "This worker's X25519 key (PEM, 0600; made on first start): the conductor seals each task's "
      "secrets for it alone. Empty: <state_dir>/worker.key. Rotate with `ekman-worker "
      "--rotate-key` (the previous key keeps opening tasks sealed before)."),

    /* [libvirt_migration_provider]: seed 004 */
    S(LV, "default_storage_pool", "", "Storage pool for volumes not mapped in storage_mappings."),
    M(LV, "migr_image_map", "", 0, "Worker image volume per OS type (key:value,key2:value2)."),
    I(LV, "migr_worker_volume_size", 25, 1, 65536, "Size (GB) of the worker VM's boot volume."),
    I(LV, "migr_worker_memory", 4096, 64, 4194304, "Memory (MB) of worker VMs."),
    I(LV, "migr_worker_vcpus", 2, 1, 1024, "vCPUs of worker VMs."),
    S(LV, "migr_worker_network", "", "Existing libvirt network for worker VMs."),
    SC(LV, "data_transfer_mechanism", "https", "https|ssh", "How disk data reaches the worker VM."),
    B(LV, "enable_vm_console_log", "true", "Write the VM serial console to a file."),
    S(LV, "vm_console_log_dir", "/var/log/libvirt/qemu",
      "Directory of console log files on the host."),
    B(LV, "enable_vm_vnc_console", "false", "Attach a VNC console (port chosen automatically)."),
    S(LV, "vnc_listen_address", "0.0.0.0", "VNC listen address."),
    S(LV, "windows_virtio_iso_url",
      "https://fedorapeople.org/groups/virt/virtio-win/direct-downloads/stable-virtio/"
      "virtio-win.iso",
      "URL of an ISO with the Windows VirtIO drivers."),
    S(LV, "windows_virtio_iso_sha256", "",
      "SHA-256 (hex) the windows_virtio_iso_url file must have (empty: not checked)."),
    B(LV, "set_dhcp", "true", "Configure the VM for DHCP during OS morphing."),
    B(LV, "use_config_drive", "false", "Send metadata to the migrated instance on a config drive."),
    B(LV, "retain_user_credentials", "true",
      "Keep cloud-init users, SSH auth and keys during OS morphing."),
    S(LV, "cpu_mode", "host-passthrough",
      "CPU mode of created domains (empty: libvirt's default)."),
    B(LV, "cpu_migratable", "true", "Disable CPU features that prevent live migration."),
    L(LV, "cpu_features", "rdtscp,invtsc,x2apic", "CPU features to require on created domains."),
    SC(LV, "migr_worker_iface_addr_src", "agent", "agent|lease|arp",
       "Where the worker VM's address is read from."),
    S(LV, "ssh_key_path", "",
      "SSH key used to reach libvirt hosts when the endpoint has none (only those in "
      "operator_key_uris)."),
    L(LV, "operator_key_uris", "",
      "Endpoints (qemu+ssh://USER@HOST:PORT/PATH, comma-separated) that may use ssh_key_path when "
      "they give "
      "no private_key; none: every endpoint must bring its own key."),
    S(LV, "sqlite_database_file", "/opt/coriolis/libvirt_provider_db.sqlite",
      "Backend-specific data file (Ekman keeps this state in PostgreSQL; see docs/)."),
    B(LV, "add_tpm_device", "true", "Attach a persistent TPM device to replica instances."),
    /* Ekman's additions (docs/provider-libvirt.md) */
    SC(LV, "domain_type", "auto", "auto|kvm|qemu",
       "Domain type of created VMs: kvm, qemu (TCG emulation) or auto (kvm when the host offers "
       "it)."),
    I(LV, "migr_worker_boot_timeout", 600, 10, 86400,
      "Seconds a worker VM gets to boot and be reachable."),
    S(LV, "osmorphing_packages_dir", "",
      "Directory on the worker host with .deb/.rpm files (qemu-guest-agent, cloud-init and what "
      "they need) "
      "installed into Linux guests whose own repositories cannot be reached during OS morphing."),
    I(LV, "osmorphing_timeout", 3600, 60, 86400,
      "Seconds OS morphing may take (initramfs rebuilds included)."),

    /* [ovirt_migration_provider]: seed 000 */
    S(OV, "default_migr_blank_template", "00000000-0000-0000-0000-000000000000",
      "Blank template for the temporary VM that manages disk snapshots."),
    S(OV, "default_cluster", "Default", "Cluster to migrate machines to."),
    S(OV, "default_storage_domain", "",
      "Storage domain (data or managed block storage) for migrated disks."),
    S(OV, "default_vm_pool", "",
      "VM pool to add migrated VMs to. oVirt has no call that puts an existing VM in a pool (a "
      "pool holds the VMs the engine makes from its template): a deployment with this set is "
      "refused at validation."),
    S(OV, "default_os_release", "other_linux", "OS type of migrated machines."),
    SC(OV, "default_optimized_for", "server", "desktop|server|high_performance",
       "Optimisation of migrated machines."),
    B(OV, "default_delete_protected", "false", "Deletion protection on migrated machines."),
    B(OV, "default_leave_migrated_vms_off", "false",
      "Do not start migrated VMs after creating them."),
    S(OV, "default_migr_minion_cluster", "",
      "Cluster for temporary minion machines (default: default_cluster)."),
    M(OV, "default_migr_template_map", "", 0, "Template per OS type for temporary machines."),
    M(OV, "default_migr_template_username_map", "", 0, "User name per OS type of those templates."),
    M(OV, "default_migr_template_password_map", "", EK_OPT_SECRET,
      "Password per OS type of those templates."),
    S(OV, "default_migr_minion_storage_domain", "",
      "Storage domain to boot temporary minion machines in."),
    SC(OV, "data_transfer_mechanism", "https", "https|imageio",
       "How disk data reaches oVirt: https = a temporary worker VM running ekman-writer (mutual "
       "TLS); imageio = straight into oVirt image transfers (ovirt-imageio, as virt-v2v's "
       "rhv-upload does), no disk-copy worker VM."),
    I(OV, "imageio_inactivity_timeout", 86400, 60, 604800,
      "Seconds an image transfer may go without a request before the engine pauses it. The disks "
      "of an instance are copied one after the other, so this must exceed the replication of the "
      "whole instance."),
    S(OV, "windows_virtio_zip_url", "",
      "URL of a zip holding winvirtio.iso (Oracle VirtIO drivers)."),
    S(OV, "windows_virtio_zip_sha256", "",
      "SHA-256 (hex) the windows_virtio_zip_url file must have (empty: not checked)."),
    S(OV, "osmorphing_packages_dir", "",
      "Directory on the worker host with .deb/.rpm files (qemu-guest-agent, cloud-init and what "
      "they need) "
      "installed into Linux guests whose own repositories cannot be reached during OS morphing."),
    I(OV, "osmorphing_timeout", 3600, 60, 86400,
      "Seconds OS morphing may take (initramfs rebuilds included)."),

    /* [ova]: the OVA/OVF source provider (worker) */
    L("ova", "allowed_roots", "",
      "Directories under which ova endpoints may point (comma-separated); none: ova endpoints are "
      "refused."),

    /* [local]: the local provider (worker) */
    L("local", "allowed_roots", "",
      "Directories under which local endpoints (and the images their domain XML names) may lie "
      "(comma-separated); none: local endpoints are refused."),

    {0},
};
