import S3rver from 's3rver'
import { afterAll, beforeAll } from 'vitest'
import type { BackupRepository } from '../../daemon/backup/repository.ts'
import { openRepository } from '../../daemon/backup/target.ts'
import { makeTempDir, useTempDirs } from './temp-dir.ts'

/** An S3-compatible server (s3rver) on loopback with a temp dir, and how to reach it. */
export interface S3Server {
  readonly endpoint: string
  readonly bucket: string
  /** S3 client settings for it (static credentials s3rver accepts). */
  readonly client: { endpoint: string; region: string; forcePathStyle: true; credentials: { accessKeyId: string; secretAccessKey: string } }
  /** Environment for a child process using the same server. */
  readonly env: Record<string, string>
  /** `s3://bucket/prefix?endpoint=...` for a fresh prefix. */
  target(prefix: string): string
  close(): Promise<void>
}

export async function startS3(bucket = 'backups'): Promise<S3Server> {
  const directory = await makeTempDir('meshsync-s3-')
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket }] })
  const { port } = await server.run()
  const endpoint = `http://127.0.0.1:${port}`
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }
  return {
    endpoint,
    bucket,
    client: { endpoint, region: 'us-east-1', forcePathStyle: true, credentials },
    env: { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_REGION: 'us-east-1' },
    target: (prefix) => `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(endpoint)}`,
    close: () => server.close(),
  }
}

/**
 * The two kinds of backup repository every repository suite runs against: a fresh directory, and
 * a fresh prefix on an s3rver started for the file (registers its own beforeAll/afterAll).
 */
export function repositoryKinds(prefix: string): [string, () => Promise<BackupRepository>][] {
  const tempDir = useTempDirs('all')
  let s3: S3Server | undefined
  let made = 0
  beforeAll(async () => {
    s3 = await startS3()
  })
  afterAll(async () => {
    await s3?.close()
  })
  return [
    ['directory', async () => openRepository(await tempDir('meshsync-repo-'))],
    ['s3', async () => openRepository((s3 as S3Server).target(`${prefix}-${++made}`), { s3: (s3 as S3Server).client })],
  ]
}
