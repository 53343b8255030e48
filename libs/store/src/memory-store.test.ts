import { objectStoreContract } from '../test/object-store-contract.js';
import { MemoryStore } from './index.js';

objectStoreContract('MemoryStore', async () => new MemoryStore());
