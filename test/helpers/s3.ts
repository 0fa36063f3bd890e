import S3rver from 's3rver'
import { makeTempDir } from './temp-dir.ts'

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
