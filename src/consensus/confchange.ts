/**
 * Membership changes, one voter at a time (Raft thesis §4.1): adding or removing a single server
 * keeps every old majority overlapping every new one, so no joint consensus is needed. A change
 * travels as a 'config' entry and takes effect on each node when that node applies it.
 */
import { PixelfleetError } from '../errors/index.ts';
import type { NodeId } from './types.ts';

export type ConfChange = { add: NodeId } | { remove: NodeId };

/**
 * What a config entry holds: a single change, or the whole bootstrap membership (entry 1 of a
 * new cluster's log, written identically by every founding member, so a node that joins later
 * learns the founding voters from the log like any other change).
 */
export type ConfigEntryData = ConfChange | { voters: NodeId[] };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfChange(change: ConfigEntryData): Uint8Array {
  return encoder.encode(JSON.stringify(change));
}

export function decodeConfChange(data: Uint8Array): ConfigEntryData {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new PixelfleetError('PF_ERR_RAFT_STATE_CORRUPT', 'config entry is not valid JSON', {
      cause: error,
    });
  }
  if (parsed !== null && typeof parsed === 'object') {
    const record = parsed as Record<string, unknown>;
    if (typeof record.add === 'string' && record.add.length > 0) return { add: record.add };
    if (typeof record.remove === 'string' && record.remove.length > 0) return { remove: record.remove };
    if (Array.isArray(record.voters) && record.voters.every((voter) => typeof voter === 'string')) {
      return { voters: record.voters as NodeId[] };
    }
  }
  throw new PixelfleetError('PF_ERR_RAFT_STATE_CORRUPT', 'config entry names neither add nor remove');
}

/** The voter set after applying `change` (unchanged when it adds a member or removes a stranger). */
export function applyConfChangeTo(voters: readonly NodeId[], change: ConfigEntryData): NodeId[] {
  if ('voters' in change) return [...change.voters];
  if ('add' in change) return voters.includes(change.add) ? [...voters] : [...voters, change.add];
  return voters.filter((voter) => voter !== change.remove);
}
