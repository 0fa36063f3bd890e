import type { S3ClientConfig } from '@aws-sdk/client-s3'
import { isAbsolute, resolve } from 'node:path'
import { DirRepository } from './dir-repository.ts'
import { BackupError } from './errors.ts'
import type { BackupRepository } from './repository.ts'
import { S3Repository } from './s3-repository.ts'

/** Extra settings for opening a repository. */
export interface OpenRepositoryOptions {
  /** S3 client settings merged over what the URL says (tests pass credentials here). */
  readonly s3?: S3ClientConfig
}

/**
 * Opens a repository from what a user typed: a directory path, or
 * `s3://bucket/prefix[?endpoint=URL&region=R&pathStyle=true]`. S3 credentials come from the AWS
 * SDK's usual sources (environment, shared config, instance role).
 */
export function openRepository(target: string, options: OpenRepositoryOptions = {}): BackupRepository {
  if (target.trim() === '') throw new BackupError('INVALID_TARGET', 'the backup target is empty')
  if (target.startsWith('s3://')) {
    let url: URL
    try {
      url = new URL(target)
    } catch (cause) {
      throw new BackupError('INVALID_TARGET', `not a valid s3:// URL: ${target}`, { cause })
    }
    const bucket = url.hostname
    if (!/^[a-z0-9][a-z0-9.-]{1,62}$/.test(bucket)) throw new BackupError('INVALID_TARGET', `not a valid bucket name in ${target}`)
    const endpoint = url.searchParams.get('endpoint') ?? undefined
    const region = url.searchParams.get('region') ?? undefined
    const pathStyle = url.searchParams.get('pathStyle') ?? (endpoint !== undefined ? 'true' : undefined)
    return new S3Repository({
      bucket,
      prefix: decodeURIComponent(url.pathname),
      client: {
        ...(endpoint !== undefined && { endpoint }),
        ...(region !== undefined && { region }),
        ...(pathStyle !== undefined && { forcePathStyle: pathStyle === 'true' }),
        ...options.s3,
      },
    })
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) throw new BackupError('INVALID_TARGET', `unsupported backup target ${target} (a directory or s3://bucket/prefix)`)
  return new DirRepository(isAbsolute(target) ? target : resolve(target))
}
