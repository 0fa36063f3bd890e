/** JSON schemas of the local API (validated by fastify's Ajv; published at /openapi.json). */

export const errorSchema = {
  $id: 'Error',
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
} as const

export const versionVectorSchema = {
  $id: 'VersionVector',
  type: 'object',
  additionalProperties: { type: 'integer' },
  description: 'node id -> counter',
} as const

export const entitySchema = {
  $id: 'Entity',
  type: 'object',
  properties: {
    ns: { type: 'string' },
    id: { type: 'string' },
    value: { type: 'object', additionalProperties: true },
    version: { $ref: 'VersionVector#' },
    updatedAt: { type: 'string', format: 'date-time' },
    deleted: { type: 'boolean' },
    backup: {
      type: 'object',
      description: 'the backup set the entity was read from (a read with `at`)',
      properties: { id: { type: 'string' }, snapshotAt: { type: 'string' }, node: { type: 'string' } },
    },
    conflicts: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          field: { type: 'string' },
          values: { type: 'array', items: { type: 'object', additionalProperties: true } },
        },
      },
    },
  },
  required: ['ns', 'id', 'value', 'version', 'updatedAt'],
} as const

export const entityParams = {
  type: 'object',
  properties: { ns: { type: 'string' }, id: { type: 'string' } },
  required: ['ns', 'id'],
} as const

export const textParams = {
  type: 'object',
  properties: { ns: { type: 'string' }, id: { type: 'string' }, name: { type: 'string' } },
  required: ['ns', 'id', 'name'],
} as const

export const nsParams = {
  type: 'object',
  properties: { ns: { type: 'string' } },
  required: ['ns'],
} as const

/** A record: any JSON object. PATCH allows null values (field removal). */
export const recordBody = { type: 'object', additionalProperties: true } as const

const uintString = { type: 'string', pattern: '^[0-9]{1,15}$' } as const

/** A read as a backup holds the data (`at`: a set id, prefix, `latest` or a time; `target`: its repository). */
const atProperties = { at: { type: 'string', minLength: 1, maxLength: 128 }, target: { type: 'string', minLength: 1, maxLength: 4096 } } as const

export const atQuery = { type: 'object', properties: atProperties, additionalProperties: false } as const

/** The passphrase of a backup repository read with `at`: a header, never in a URL. */
export const passphraseHeader = { type: 'object', properties: { 'x-backup-passphrase': { type: 'string' } } } as const

export const listQuery = {
  type: 'object',
  properties: { prefix: { type: 'string', maxLength: 256 }, after: { type: 'string', maxLength: 256 }, limit: uintString, ...atProperties },
  additionalProperties: false,
} as const

export const changesQuery = {
  type: 'object',
  // The cursor's syntax is checked by the route, so a bad one is INVALID_CURSOR, as it is in
  // Last-Event-ID, rather than INVALID_QUERY.
  properties: { since: { type: 'string', maxLength: 64 }, limit: uintString },
  additionalProperties: false,
} as const

export const batchBody = {
  type: 'object',
  properties: {
    ops: {
      type: 'array',
      minItems: 1,
      maxItems: 10_000,
      items: {
        type: 'object',
        properties: {
          op: { type: 'string', enum: ['put', 'patch', 'delete'] },
          ns: { type: 'string' },
          id: { type: 'string' },
          value: { type: 'object', additionalProperties: true },
        },
        required: ['op', 'ns', 'id'],
        additionalProperties: false,
      },
    },
  },
  required: ['ops'],
  additionalProperties: false,
} as const

export const textBody = {
  type: 'object',
  properties: {
    ops: {
      type: 'array',
      maxItems: 100_000,
      items: {
        type: 'array',
        minItems: 3,
        maxItems: 3,
        items: [{ type: 'integer', minimum: 0 }, { type: 'integer', minimum: 0 }, { type: 'string' }],
        additionalItems: false,
      },
    },
  },
  required: ['ops'],
  additionalProperties: false,
} as const

export const sharedSchemas = [errorSchema, versionVectorSchema, entitySchema]
