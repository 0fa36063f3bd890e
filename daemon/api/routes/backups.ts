import type { FastifyInstance } from 'fastify'
import { BackupError } from '../../backup/errors.ts'
import type { BackupService } from '../../backup/service.ts'
import type { ApiContext } from '../context.ts'

const target = { type: 'string', minLength: 1, maxLength: 4096 }
const passphrase = { type: 'string', minLength: 1, maxLength: 4096 }

/** Backups (docs/api.md, docs/backups.md): create, list, verify, restore. */
export function backupRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const service = (): BackupService => {
    if (!ctx.backups) throw new BackupError('NO_BACKUP_TARGET', 'backups are not available on this node')
    return ctx.backups
  }

  app.post<{ Body: { type: 'full' | 'incremental' | 'differential'; method?: 'entities' | 'files'; target?: string; passphrase?: string } }>(
    '/v1/backups',
    {
      schema: {
        body: {
          type: 'object',
          properties: { type: { type: 'string', enum: ['full', 'incremental', 'differential'] }, method: { type: 'string', enum: ['entities', 'files'] }, target, passphrase },
          required: ['type'],
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const result = await service().create(req.body)
      return reply.status(201).send(result)
    },
  )

  app.get<{ Querystring: { target?: string } }>(
    '/v1/backups',
    { schema: { querystring: { type: 'object', properties: { target }, additionalProperties: false } } },
    async (req) => service().list(req.query.target !== undefined ? { target: req.query.target } : {}),
  )

  app.post<{ Params: { id: string }; Body: { target?: string; passphrase?: string } | undefined }>(
    '/v1/backups/:id/verify',
    { schema: { body: { type: 'object', properties: { target, passphrase }, additionalProperties: false } } },
    async (req) => service().verify(req.params.id, req.body ?? {}),
  )

  app.post<{ Body: { backup: string; target?: string; ns?: string; id?: string; into?: string; passphrase?: string } }>(
    '/v1/restore',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            backup: { type: 'string', minLength: 1, maxLength: 128 },
            target,
            ns: { type: 'string', minLength: 1, maxLength: 64 },
            id: { type: 'string', minLength: 1, maxLength: 1024 },
            into: { type: 'string', minLength: 1, maxLength: 4096 },
            passphrase,
          },
          required: ['backup'],
          additionalProperties: false,
        },
      },
    },
    async (req) => service().restore(req.body),
  )
}
