export * from './strategies/index.ts';
