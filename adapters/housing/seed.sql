-- seed.sql - 鄂尔多斯市住房和城乡建设局: the 楼盘表 of the demonstration
-- units with their owners, and the escrow accounts.  Every identifier below
-- passes `qiao id check`.  The first unit is the flat of the demonstration
-- 带押过户 (the registry's, bank A's and the tax bureau's seed); the last
-- is under a court seizure (查封).

INSERT INTO house (unit_no, cert_no, address, building_area_dm2, usage, restricted, restriction_reason) VALUES
  ('150602001001GB00001F00010001', '蒙(2020)鄂尔多斯市不动产权第0001234号',
   '鄂尔多斯市东胜区天骄北路18号锦绣园小区3号楼2单元1201室', 12856, '住宅', 0, NULL),
  ('150602001001GB00002F00010002', '蒙(2021)鄂尔多斯市不动产权第0009876号',
   '鄂尔多斯市东胜区铜川路15号阳光小区5号楼1单元0602室', 11820, '住宅', 0, NULL),
  ('150602001002GB00031F00030502', '蒙(2025)鄂尔多斯市不动产权第0023456号',
   '鄂尔多斯市东胜区天骄北路28号华泰家园3号楼0502室', 14600, '住宅', 0, NULL),
  ('150603002003GB00015F00020101', '蒙(2019)鄂尔多斯市不动产权第0004567号',
   '鄂尔多斯市康巴什区青春山街道滨河小区2号楼0101室', 10230, '住宅', 1,
   '鄂尔多斯市东胜区人民法院（2026）蒙0602执1234号查封');

INSERT INTO house_owner (unit_no, id_type, id_no, name) VALUES
  ('150602001001GB00001F00010001', 'RESIDENT_ID', '150621199003154522', '张晓梅'),
  ('150602001001GB00002F00010002', 'RESIDENT_ID', '150603199502140616', '马骏'),
  ('150602001002GB00031F00030502', 'RESIDENT_ID', '150627199201050028', '高雅琴'),
  ('150603002003GB00015F00020101', 'RESIDENT_ID', '15060319880721321X', '赵志强');

INSERT INTO escrow_bank_account (account_no, account_name, bank_name, bank_code, bank_uscc, active) VALUES
  ('15050170000000000001', '鄂尔多斯市住房和城乡建设局存量房交易资金监管专户', '银行B股份有限公司鄂尔多斯分行',
   '313205000022', '91150600MA0C9012X7', 1),
  ('62221506000000990010', '鄂尔多斯市住房和城乡建设局存量房交易资金监管专户', '银行A股份有限公司鄂尔多斯分行营业部',
   '313205000011', '91150600MA0B56780F', 1);
