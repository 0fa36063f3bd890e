import type { FastifyInstance } from 'fastify'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import type { WebSocket } from 'ws'
import * as awarenessProtocol from 'y-protocols/awareness'
import * as syncProtocol from 'y-protocols/sync'
import * as Y from 'yjs'
import { assertEntityId, assertNamespace, MeshsyncError } from '../../../crdt/index.ts'
import type { CommittedChange, EntityStore } from '../../store/entity-store.ts'
import type { ApiContext } from '../context.ts'
import { entityParams } from '../schemas.ts'

/** y-websocket message types. */
const MESSAGE_SYNC = 0
const MESSAGE_AWARENESS = 1
const MESSAGE_QUERY_AWARENESS = 3

/** Largest message a Yjs client may send (the same as a request body). */
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024

/**
 * One entity as seen by the Yjs clients connected to this node: a mirror of its committed state
 * (kept current from the store's change events, local and remote), the connections, and their
 * awareness (presence, cursors), which stays on this node.
 */
class Room {
  readonly doc = new Y.Doc({ gc: true })
  readonly awareness: awarenessProtocol.Awareness
  readonly conns = new Map<WebSocket, Set<number>>()
  /** Client updates are committed one after another, in arrival order. */
  chain: Promise<unknown> = Promise.resolve()
  readonly #store: EntityStore
  readonly #onChange: (c: CommittedChange) => void

  /** Opens the room: follows the entity's changes first, then loads its committed state. */
  static async open(store: EntityStore, ns: string, id: string): Promise<Room> {
    const room = new Room(store, ns, id)
    const state = await store.entityState(ns, id)
    // Updates are idempotent and order-free: a change seen before the state loads is harmless.
    if (state) Y.applyUpdate(room.doc, state)
    return room
  }

  close(): void {
    this.#store.off('change', this.#onChange)
    this.awareness.destroy()
    this.doc.destroy()
  }

  private constructor(store: EntityStore, ns: string, id: string) {
    this.#store = store
    this.#onChange = (c) => {
      // Recorded but not applied here (push-only, or stale): the entity did not change.
      if (c.change.ns !== ns || c.change.id !== id || !c.applied) return
      if (c.change.fresh === true) {
        // The entity was deleted and written again as a new incarnation: the clients' documents
        // (and this mirror) hold the old one, which nothing can merge into the new. Closing tells
        // them to start a new Y.Doc; the room reopens on the new state (docs/tombstone-gc.md).
        for (const ws of this.conns.keys()) ws.close(4410, 'ENTITY_RECREATED')
        return
      }
      if (c.change.update.length === 0) return
      Y.applyUpdate(this.doc, c.change.update)
      const e = encoding.createEncoder()
      encoding.writeVarUint(e, MESSAGE_SYNC)
      syncProtocol.writeUpdate(e, c.change.update)
      this.broadcast(encoding.toUint8Array(e))
    }
    store.on('change', this.#onChange)
    this.awareness = new awarenessProtocol.Awareness(this.doc)
    this.awareness.setLocalState(null)
    this.awareness.on('update', ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }, origin: unknown) => {
      const changed = [...added, ...updated, ...removed]
      const ids = origin instanceof Object ? this.conns.get(origin as WebSocket) : undefined
      if (ids) {
        for (const id of added) ids.add(id)
        for (const id of removed) ids.delete(id)
      }
      const e = encoding.createEncoder()
      encoding.writeVarUint(e, MESSAGE_AWARENESS)
      encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(this.awareness, changed))
      this.broadcast(encoding.toUint8Array(e))
    })
  }

  broadcast(message: Uint8Array): void {
    for (const ws of this.conns.keys()) send(ws, message)
  }
}

/**
 * `WS /v1/yjs/:ns/:id` speaks the y-websocket protocol (sync steps 1 and 2, updates, awareness),
 * so an app using the stock `y-websocket` WebsocketProvider binds to an entity through its local
 * daemon. Every update a client sends is committed as a local change (durable, replicated to
 * every peer like any other write); every change the entity receives reaches the clients.
 */
export function yjsWebsocketRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx
  const rooms = new Map<string, Promise<Room>>()

  app.get<{ Params: { ns: string; id: string } }>('/v1/yjs/:ns/:id', { websocket: true, schema: { params: entityParams, hide: true } }, (socket, req) => {
    const { ns, id } = req.params
    try {
      assertNamespace(ns)
      assertEntityId(id)
    } catch (error) {
      socket.close(4400, error instanceof MeshsyncError ? error.code : 'INVALID_ID')
      return
    }
    // Messages can arrive before the room is open: hold them until it is.
    const early: Uint8Array[] = []
    const hold = (data: Buffer): void => void early.push(new Uint8Array(data))
    socket.on('message', hold)
    const key = `${ns}/${id}`
    let opening = rooms.get(key)
    if (!opening) {
      opening = Room.open(store, ns, id)
      rooms.set(key, opening)
      opening.catch(() => rooms.delete(key))
    }
    opening.then(
      (room) => {
        socket.off('message', hold)
        join(store, room, socket, ns, id, early, () => {
          rooms.delete(key)
          room.close()
        })
      },
      (error: unknown) => {
        req.log.error({ err: error, ns, id }, 'could not open a Yjs room')
        socket.close(1011, 'INTERNAL')
      },
    )
  })
}

function join(store: EntityStore, room: Room, ws: WebSocket, ns: string, id: string, early: readonly Uint8Array[], onEmpty: () => void): void {
  room.conns.set(ws, new Set())
  const onMessage = (data: Uint8Array): void => {
    if (data.length > MAX_MESSAGE_BYTES) {
      ws.close(1009, 'message too large')
      return
    }
    try {
      handleMessage(store, room, ws, ns, id, data)
    } catch {
      ws.close(4400, 'INVALID_MESSAGE')
    }
  }
  ws.on('message', (data: Buffer) => onMessage(new Uint8Array(data.buffer, data.byteOffset, data.length)))
  ws.on('close', () => {
    const ids = room.conns.get(ws)
    room.conns.delete(ws)
    if (ids && ids.size > 0) awarenessProtocol.removeAwarenessStates(room.awareness, [...ids], null)
    if (room.conns.size === 0) onEmpty()
  })
  // Server first: sync step 1 (so the client sends what we lack), and the room's presence.
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MESSAGE_SYNC)
  syncProtocol.writeSyncStep1(e, room.doc)
  send(ws, encoding.toUint8Array(e))
  const states = room.awareness.getStates()
  if (states.size > 0) {
    const a = encoding.createEncoder()
    encoding.writeVarUint(a, MESSAGE_AWARENESS)
    encoding.writeVarUint8Array(a, awarenessProtocol.encodeAwarenessUpdate(room.awareness, [...states.keys()]))
    send(ws, encoding.toUint8Array(a))
  }
  for (const message of early) onMessage(message)
}

function handleMessage(store: EntityStore, room: Room, ws: WebSocket, ns: string, id: string, message: Uint8Array): void {
  const d = decoding.createDecoder(message)
  const type = decoding.readVarUint(d)
  if (type === MESSAGE_SYNC) {
    const syncType = decoding.readVarUint(d)
    if (syncType === syncProtocol.messageYjsSyncStep1) {
      // Answer with what the client lacks of the committed state.
      const e = encoding.createEncoder()
      encoding.writeVarUint(e, MESSAGE_SYNC)
      syncProtocol.writeSyncStep2(e, room.doc, decoding.readVarUint8Array(d))
      send(ws, encoding.toUint8Array(e))
      return
    }
    if (syncType === syncProtocol.messageYjsSyncStep2 || syncType === syncProtocol.messageYjsUpdate) {
      const update = decoding.readVarUint8Array(d)
      // Commit through the store (durable, replicated); the change event then updates every
      // client of the room, this one included (a Yjs client ignores what it already has).
      room.chain = room.chain.then(() =>
        store.write([{ op: 'yjs', ns, id, update }]).catch((error: unknown) => {
          const code = error instanceof MeshsyncError ? error.code : 'INTERNAL'
          ws.close(code === 'UNRESOLVED_CONFLICT' ? 4409 : code === 'READ_ONLY_NAMESPACE' ? 4403 : 4400, code)
        }),
      )
      return
    }
    throw new Error('unknown sync message')
  }
  if (type === MESSAGE_AWARENESS) {
    awarenessProtocol.applyAwarenessUpdate(room.awareness, decoding.readVarUint8Array(d), ws)
    return
  }
  if (type === MESSAGE_QUERY_AWARENESS) {
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, MESSAGE_AWARENESS)
    encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(room.awareness, [...room.awareness.getStates().keys()]))
    send(ws, encoding.toUint8Array(e))
    return
  }
  throw new Error('unknown message type')
}

function send(ws: WebSocket, message: Uint8Array): void {
  if (ws.readyState === ws.OPEN) ws.send(message, { binary: true })
}
