import type * as S3Sdk from '@aws-sdk/client-s3'
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3'

/** The AWS SDK, loaded on first use: about 5 MB of a daemon's memory that a node without an S3 target never needs. */
type Sdk = typeof S3Sdk
let sdk: Promise<Sdk> | undefined
const loadSdk = (): Promise<Sdk> => (sdk ??= import('@aws-sdk/client-s3'))
import { BackupError } from './errors.ts'
import { MANIFEST, setKey, type BackupRepository, type RepoCallOptions, type SetWriter } from './repository.ts'

/** Where an S3 repository is and how to reach it. */
export interface S3Target {
  readonly bucket: string
  /** Key prefix inside the bucket ('' or ending without a slash). */
  readonly prefix: string
  /** S3 client settings (endpoint, region, credentials, forcePathStyle); the SDK's defaults otherwise. */
  readonly client?: S3ClientConfig
}

/**
 * A repository under an S3 bucket prefix (AWS, MinIO, Garage, ...). Objects are single PUTs
 * (atomic on S3); a set's chunks and index go first and its manifest last, so a set is listed
 * only once every object it names is stored. Chunks of a set whose writer died before its
 * manifest are debris, removed by prune under the exclusive lock.
 */
export class S3Repository implements BackupRepository {
  readonly location: string
  readonly #bucket: string
  readonly #prefix: string
  readonly #config: S3ClientConfig
  #s3: Promise<{ s3: S3Client; sdk: Sdk }> | undefined

  constructor(target: S3Target) {
    this.#bucket = target.bucket
    this.#prefix = target.prefix.replace(/^\/+|\/+$/g, '')
    this.location = `s3://${this.#bucket}${this.#prefix ? `/${this.#prefix}` : ''}`
    this.#config = {
      region: process.env.AWS_REGION ?? 'us-east-1',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      ...target.client,
    }
  }

  /** The client, made on first use. */
  #client(): Promise<{ s3: S3Client; sdk: Sdk }> {
    this.#s3 ??= loadSdk().then((loaded) => ({ s3: new loaded.S3Client(this.#config), sdk: loaded }))
    return this.#s3
  }

  #key(key: string): string {
    return this.#prefix ? `${this.#prefix}/${key}` : key
  }

  async get(key: string, options: RepoCallOptions = {}): Promise<Uint8Array | undefined> {
    try {
      const { s3, sdk } = await this.#client()
      const out = await s3.send(new sdk.GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }), signalOf(options))
      if (!out.Body) return new Uint8Array(0)
      return await out.Body.transformToByteArray()
    } catch (cause) {
      if (errorName(cause) === 'NoSuchKey' || httpStatus(cause) === 404) {
        if (errorName(cause) === 'NoSuchBucket') throw this.#unreachable(cause)
        return undefined
      }
      throw this.#unreachable(cause)
    }
  }

  async put(key: string, bytes: Uint8Array, options: RepoCallOptions = {}): Promise<void> {
    try {
      const { s3, sdk } = await this.#client()
      await s3.send(new sdk.PutObjectCommand({ Bucket: this.#bucket, Key: this.#key(key), Body: bytes, ContentLength: bytes.length }), signalOf(options))
    } catch (cause) {
      throw this.#unreachable(cause)
    }
  }

  async list(prefix: string, options: RepoCallOptions = {}): Promise<string[]> {
    const out: string[] = []
    const strip = this.#prefix ? this.#prefix.length + 1 : 0
    let token: string | undefined
    try {
      const { s3, sdk } = await this.#client()
      do {
        const page = await s3.send(
          new sdk.ListObjectsV2Command({ Bucket: this.#bucket, Prefix: this.#key(prefix), ...(token !== undefined && { ContinuationToken: token }) }),
          signalOf(options),
        )
        for (const o of page.Contents ?? []) if (o.Key !== undefined) out.push(o.Key.slice(strip))
        token = page.IsTruncated ? page.NextContinuationToken : undefined
      } while (token !== undefined)
    } catch (cause) {
      throw this.#unreachable(cause)
    }
    return out.sort()
  }

  async delete(key: string, options: RepoCallOptions = {}): Promise<void> {
    try {
      const { s3, sdk } = await this.#client()
      await s3.send(new sdk.DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }), signalOf(options))
    } catch (cause) {
      if (httpStatus(cause) === 404) return
      throw this.#unreachable(cause)
    }
  }

  async listSets(options: RepoCallOptions = {}): Promise<string[]> {
    const keys = await this.list('sets/', options)
    return keys
      .filter((k) => k.endsWith(`/${MANIFEST}`) && k.split('/').length === 3)
      .map((k) => k.split('/')[1] as string)
      .sort()
  }

  async beginSet(id: string): Promise<SetWriter> {
    const written: string[] = []
    return {
      put: async (name, bytes, options) => {
        const key = setKey(id, name)
        written.push(key)
        await this.put(key, bytes, options)
      },
      publish: async (manifest, options) => {
        await this.put(setKey(id, MANIFEST), manifest, options)
      },
      abort: async () => {
        for (const key of written) await this.delete(key).catch(() => undefined)
      },
    }
  }

  async deleteSet(id: string, options: RepoCallOptions = {}): Promise<void> {
    await this.delete(setKey(id, MANIFEST), options)
    for (const key of await this.list(`sets/${id}/`, options)) await this.delete(key, options)
  }

  async removeDebris(options: RepoCallOptions = {}): Promise<number> {
    const keys = await this.list('sets/', options)
    const byId = new Map<string, string[]>()
    for (const key of keys) {
      const id = key.split('/')[1] as string
      byId.set(id, [...(byId.get(id) ?? []), key])
    }
    let removed = 0
    for (const [, objects] of byId) {
      if (objects.some((k) => k.endsWith(`/${MANIFEST}`))) continue
      for (const key of objects) await this.delete(key, options)
      removed++
    }
    return removed
  }

  async close(): Promise<void> {
    if (this.#s3) (await this.#s3).s3.destroy()
  }

  #unreachable(cause: unknown): BackupError {
    const why = cause instanceof Error ? `${errorName(cause) ?? ''} ${cause.message}`.trim() : String(cause)
    return new BackupError('TARGET_UNREACHABLE', `backup repository ${this.location}: ${why}`, { cause })
  }
}

function signalOf(options: RepoCallOptions): { abortSignal?: AbortSignal } {
  return options.signal ? { abortSignal: options.signal } : {}
}

function errorName(error: unknown): string | undefined {
  return (error as { name?: string; Code?: string }).Code ?? (error as { name?: string }).name
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
}
