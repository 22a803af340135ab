-- seed.sql - 国家税务总局鄂尔多斯市税务局: valuation base, household
-- housing, arrears and the rate table for 存量房 transfers.  Every
-- identifier below passes `qiao id check`.  The first unit is the flat of
-- the demonstration 带押过户 (the registry's and bank A's seed): held since
-- 2020 by 张晓梅 as her household's only home (满五唯一), valued at
-- 1,400,000.00 元.

INSERT INTO property_valuation (unit_no, cert_no, address, building_area_dm2, usage, assessed_price_fen,
  acquired_date, seller_only_home, valued_date) VALUES
  ('150602001001GB00001F00010001', '蒙(2020)鄂尔多斯市不动产权第0001234号',
   '鄂尔多斯市东胜区天骄北路18号锦绣园小区3号楼2单元1201室', 12856, '住宅', 140000000, '2020-06-18', 1, '2026-10-01'),
  ('150602001001GB00002F00010002', '蒙(2021)鄂尔多斯市不动产权第0009876号',
   '鄂尔多斯市东胜区铜川路15号阳光小区5号楼1单元0602室', 11820, '住宅', 165000000, '2021-03-01', 0, '2026-10-01'),
  ('150602001002GB00031F00030502', '蒙(2025)鄂尔多斯市不动产权第0023456号',
   '鄂尔多斯市东胜区天骄北路28号华泰家园3号楼0502室', 14600, '住宅', 198000000, '2025-09-10', 1, '2026-10-01');

INSERT INTO buyer_housing (id_no, id_type, name, homes_owned, checked_date) VALUES
  ('15060219850612003X', 'RESIDENT_ID', '李建国', 0, '2026-11-20'),
  ('150602198709301527', 'RESIDENT_ID', '刘芳', 0, '2026-11-20'),
  ('150603199502140616', 'RESIDENT_ID', '马骏', 1, '2026-11-02');

INSERT INTO tax_arrears (arrears_no, id_type, id_no, name, tax_type, tax_name, period, amount_fen, status, notice_date) VALUES
  ('QS-150602-2026-000318', 'RESIDENT_ID', '150621198204180036', '韩旭东', 3, '个人所得税', '2025年度综合所得汇算清缴',
   356700, 'OUTSTANDING', '2026-07-15'),
  ('QS-150602-2025-000102', 'RESIDENT_ID', '150603199502140616', '马骏', 3, '个人所得税', '2024年度综合所得汇算清缴',
   82000, 'CLEARED', '2025-07-10');

INSERT INTO tax_rate (rate_id, tax_type, tax_name, payer_role, base, rate_ppm, area_min_dm2, area_max_dm2,
  homes_min, homes_max, hold_min_years, hold_max_years, only_home, basis, effective_from, effective_to) VALUES
  -- 契税 (buyer): household's first home / second home relief, else 3 %
  (101, 1, '契税', 'BUYER', 'PRICE_NET', 10000, NULL, 14000, 0, 0, NULL, NULL, NULL,
   '财政部 税务总局 住房城乡建设部公告2024年第16号（家庭唯一住房，140平方米及以下）', '2024-12-01', NULL),
  (102, 1, '契税', 'BUYER', 'PRICE_NET', 15000, 14001, NULL, 0, 0, NULL, NULL, NULL,
   '财政部 税务总局 住房城乡建设部公告2024年第16号（家庭唯一住房，140平方米以上）', '2024-12-01', NULL),
  (103, 1, '契税', 'BUYER', 'PRICE_NET', 10000, NULL, 14000, 1, 1, NULL, NULL, NULL,
   '财政部 税务总局 住房城乡建设部公告2024年第16号（家庭第二套住房，140平方米及以下）', '2024-12-01', NULL),
  (104, 1, '契税', 'BUYER', 'PRICE_NET', 20000, 14001, NULL, 1, 1, NULL, NULL, NULL,
   '财政部 税务总局 住房城乡建设部公告2024年第16号（家庭第二套住房，140平方米以上）', '2024-12-01', NULL),
  (105, 1, '契税', 'BUYER', 'PRICE_NET', 30000, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   '中华人民共和国契税法；内蒙古自治区契税适用税率3%', '2021-09-01', NULL),
  -- 增值税 (seller): held 2 years or more exempt, else 5 % 征收率 on the price without VAT
  (201, 2, '增值税', 'SELLER', 'PRICE', 0, NULL, NULL, NULL, NULL, 2, NULL, NULL,
   '财政部 税务总局公告2024年第16号（个人将购买2年以上（含2年）的住房对外销售免征增值税）', '2024-12-01', NULL),
  (202, 2, '增值税', 'SELLER', 'PRICE_EX_VAT', 50000, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   '财税〔2016〕36号（个人销售不动产按5%征收率）', '2016-05-01', NULL),
  -- 附加税费 on the VAT (seller)
  (601, 6, '城市维护建设税', 'SELLER', 'VAT', 70000, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   '中华人民共和国城市维护建设税法（市区7%）', '2021-09-01', NULL),
  (701, 7, '教育费附加', 'SELLER', 'VAT', 30000, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   '征收教育费附加的暂行规定（3%）', '2005-10-01', NULL),
  (801, 8, '地方教育附加', 'SELLER', 'VAT', 20000, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   '内蒙古自治区地方教育附加征收使用管理办法（2%）', '2011-01-01', NULL),
  -- 个人所得税 (seller): 满五唯一 exempt, else 核定征收 1 %
  (301, 3, '个人所得税', 'SELLER', 'PRICE_NET', 0, NULL, NULL, NULL, NULL, 5, NULL, 1,
   '财税字〔1999〕278号（个人转让自用5年以上并且是家庭唯一生活用房免征）', '1999-12-02', NULL),
  (302, 3, '个人所得税', 'SELLER', 'PRICE_NET', 10000, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   '国税发〔2006〕108号；内蒙古自治区核定征收率1%', '2006-08-01', NULL),
  -- 印花税: 个人销售或购买住房暂免征收
  (501, 5, '印花税', 'SELLER', 'PRICE', 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   '财税〔2008〕137号（个人销售住房暂免征收印花税）', '2008-11-01', NULL),
  (502, 5, '印花税', 'BUYER', 'PRICE', 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   '财税〔2008〕137号（个人购买住房暂免征收印花税）', '2008-11-01', NULL);

-- 新办纳税人套餐 (企业开办): the tax offices by division, the 非正常户 of
-- the city, and the levy and invoice rules of new taxpayers.  鼎盛建材 has
-- been abnormal since 2025: its legal representative 郭宏伟 gets no new
-- registration while it is (the 企业开办 demonstration's refused case).
-- 恒泰物资's abnormal status was lifted: it no longer blocks 王丽娜.
INSERT INTO tax_office (area_code, office_code, office_name) VALUES
  ('150600', '11506000000', '国家税务总局鄂尔多斯市税务局'),
  ('150602', '11506020000', '国家税务总局鄂尔多斯市东胜区税务局'),
  ('150603', '11506030000', '国家税务总局鄂尔多斯市康巴什区税务局'),
  ('150621', '11506210000', '国家税务总局达拉特旗税务局'),
  ('150627', '11506270000', '国家税务总局伊金霍洛旗税务局');

INSERT INTO abnormal_taxpayer (taxpayer_id, taxpayer_name, legal_rep_name, legal_rep_id, finance_officer_id,
  recognised_date, status, lifted_date) VALUES
  ('91150602MA0Q8N2F2R', '鄂尔多斯市东胜区鼎盛建材经销有限公司', '郭宏伟', '150627197904110534', NULL,
   '2025-09-30', 'ABNORMAL', NULL),
  ('91150602MA0UC4PK3W', '鄂尔多斯市东胜区恒泰物资有限公司', '高建军', '150621196811020131',
   '150603199103220424', '2024-04-30', 'LIFTED', '2024-08-15');

INSERT INTO levy_rule (rule_id, vat_type, tax_type, tax_name, item_name, rate_ppm, period, basis,
  effective_from, effective_to) VALUES
  (1001, 'SMALL_SCALE', 2, '增值税', '货物、服务（小规模纳税人）', 10000, 'QUARTERLY',
   '中华人民共和国增值税法第十一条；财政部 税务总局公告2023年第19号（征收率3%减按1%，至2027年12月31日）',
   '2023-01-01', '2027-12-31'),
  (1002, 'SMALL_SCALE', 6, '城市维护建设税', '市区（增值税附征）', 70000, 'QUARTERLY',
   '中华人民共和国城市维护建设税法（市区7%）；财政部 税务总局公告2023年第12号（小规模纳税人减半征收）',
   '2023-01-01', NULL),
  (1003, 'SMALL_SCALE', 7, '教育费附加', '增值税教育费附加', 30000, 'QUARTERLY',
   '征收教育费附加的暂行规定（3%）；财政部 税务总局公告2023年第12号（减半征收）', '2023-01-01', NULL),
  (1004, 'SMALL_SCALE', 8, '地方教育附加', '增值税地方教育附加', 20000, 'QUARTERLY',
   '内蒙古自治区地方教育附加征收使用管理办法（2%）；财政部 税务总局公告2023年第12号（减半征收）', '2023-01-01', NULL),
  (1101, 'GENERAL', 2, '增值税', '销售货物', 130000, 'MONTHLY',
   '中华人民共和国增值税法第十条（13%）', '2026-01-01', NULL),
  (1102, 'GENERAL', 6, '城市维护建设税', '市区（增值税附征）', 70000, 'MONTHLY',
   '中华人民共和国城市维护建设税法（市区7%）', '2021-09-01', NULL),
  (1103, 'GENERAL', 7, '教育费附加', '增值税教育费附加', 30000, 'MONTHLY',
   '征收教育费附加的暂行规定（3%）', '2005-10-01', NULL),
  (1104, 'GENERAL', 8, '地方教育附加', '增值税地方教育附加', 20000, 'MONTHLY',
   '内蒙古自治区地方教育附加征收使用管理办法（2%）', '2011-01-01', NULL),
  (1201, NULL, 10, '企业所得税', '应纳税所得额（查账征收，按季预缴）', 250000, 'QUARTERLY',
   '中华人民共和国企业所得税法第四条（25%）', '2008-01-01', NULL),
  (1202, NULL, 5, '印花税', '营业账簿（实收资本、资本公积）', 250, 'PER_TRANSACTION',
   '中华人民共和国印花税法 印花税税目税率表（营业账簿 万分之二点五）', '2022-07-01', NULL);

-- initial monthly credit lines of new taxpayers [unverified: set by each
-- bureau's 数电发票 credit model]
INSERT INTO invoice_rule (vat_type, invoice_type, credit_limit_fen, basis) VALUES
  ('SMALL_SCALE', 'DIGITAL_ORDINARY', 10000000, '新办纳税人 数电发票初始开具金额总额度（小规模纳税人）'),
  ('SMALL_SCALE', 'DIGITAL_SPECIAL', 10000000, '新办纳税人 数电发票初始开具金额总额度（小规模纳税人）'),
  ('GENERAL', 'DIGITAL_ORDINARY', 100000000, '新办纳税人 数电发票初始开具金额总额度（一般纳税人）'),
  ('GENERAL', 'DIGITAL_SPECIAL', 100000000, '新办纳税人 数电发票初始开具金额总额度（一般纳税人）');
