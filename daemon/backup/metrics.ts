import { Gauge, type Registry } from 'prom-client'
import type { BackupService } from './service.ts'

/** Backup gauges on the daemon's registry, read from the service's status at scrape time. */
export function registerBackupMetrics(registry: Registry, service: BackupService): void {
  const registers = [registry]
  new Gauge({
    name: 'meshsync_backup_last_success_timestamp_seconds',
    help: 'Snapshot time of the last successful backup (0: none yet).',
    registers,
    collect() {
      const s = service.status().lastSuccess
      this.set(s ? Date.parse(s.at) / 1000 : 0)
    },
  })
  new Gauge({
    name: 'meshsync_backup_last_failure_timestamp_seconds',
    help: 'Time of the last failed backup (0: none).',
    registers,
    collect() {
      const f = service.status().lastFailure
      this.set(f ? Date.parse(f.at) / 1000 : 0)
    },
  })
  new Gauge({
    name: 'meshsync_backup_last_bytes',
    help: 'Bytes stored by the last successful backup.',
    registers,
    collect() {
      this.set(service.status().lastSuccess?.bytes ?? 0)
    },
  })
  new Gauge({
    name: 'meshsync_backup_last_duration_seconds',
    help: 'Duration of the last successful backup.',
    registers,
    collect() {
      this.set((service.status().lastSuccess?.durationMs ?? 0) / 1000)
    },
  })
  new Gauge({
    name: 'meshsync_backup_operation_running',
    help: 'A backup, restore, verify, synthesize or prune running now (1), by kind.',
    labelNames: ['kind'],
    registers,
    collect() {
      this.reset()
      const op = service.status().operation
      if (op) this.set({ kind: op.kind }, 1)
    },
  })
  new Gauge({
    name: 'meshsync_backup_operation_done',
    help: 'Entities (or objects, for verify) the running backup operation has done (0: none running).',
    registers,
    collect() {
      this.set(service.status().operation?.done ?? 0)
    },
  })
  new Gauge({
    name: 'meshsync_backup_operation_total',
    help: 'Entities (or objects) the running backup operation has in all (0: none running or not known yet).',
    registers,
    collect() {
      this.set(service.status().operation?.total ?? 0)
    },
  })
  new Gauge({
    name: 'meshsync_backup_operation_bytes',
    help: 'Bytes the running backup operation has read from and written to the repository.',
    registers,
    collect() {
      this.set(service.status().operation?.bytes ?? 0)
    },
  })
}
