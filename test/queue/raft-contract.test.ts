import { openRaftQueueNode, RaftQueueClient } from '../../src/queue/raft/index.ts';
import { freePort, tempDir, testClusterSecret } from '../support/index.ts';
import { runQueueContract } from './contract.ts';
import { startInProcessCluster } from './fixtures/raft-in-process-cluster.ts';

runQueueContract('raft (1 node, in-process)', async () => {
  const directory = await tempDir(undefined, 'pixelfleet-raft-');
  const node = await openRaftQueueNode({
    id: 'n1',
    listen: { host: '127.0.0.1', port: await freePort() },
    peers: {},
    dataDir: directory.path,
    clusterSecret: testClusterSecret,
  });
  return {
    queue: node.queue,
    close: async () => {
      await node.close();
      await directory.remove();
    },
  };
});

runQueueContract('raft (3 nodes, in-process)', async () => {
  const cluster = await startInProcessCluster({ size: 3 });
  await cluster.leader();
  const client = new RaftQueueClient({ nodes: cluster.clientAddresses() });
  return {
    queue: client,
    close: async () => {
      await client.close();
      await cluster.close();
    },
  };
});
