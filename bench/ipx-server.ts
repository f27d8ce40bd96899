/**
 * ipx (the Node image server many teams pick today) serving the corpus, for the side-by-side
 * benchmark. Prints its port on stdout.
 */
import { createServer } from 'node:http';
import { createIPX, createIPXNodeServer, ipxFSStorage } from 'ipx';

const directory = process.argv[2]!;
const ipx = createIPX({ storage: ipxFSStorage({ dir: directory }) });
const server = createServer(createIPXNodeServer(ipx));
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 }));
});
