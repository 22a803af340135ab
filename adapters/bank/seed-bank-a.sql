-- seed-bank-a.sql - 银行A 鄂尔多斯分行: customers, risk list and loan
-- ledger.  Every identifier below passes `qiao id check`.  The first loan
-- is the seller's mortgage of the demonstration 带押过户: the same
-- 不动产单元号 / 不动产权证书号 / 不动产证明号 as the registry's seed.

INSERT INTO customer (cust_no, cust_name, id_type, id_no, phone, monthly_income_fen, monthly_debt_fen, opened_date) VALUES
  ('A150600001001', '张晓梅', 'RESIDENT_ID', '150621199003154522', '13904770123', 1200000, 520000, '2020-05-20'),
  ('A150600001002', '赵志强', 'RESIDENT_ID', '15060319880721321X', '13847730456', 900000, 410000, '2019-10-20'),
  ('A150600001003', '高雅琴', 'RESIDENT_ID', '150627199201050028', '15847700789', 1050000, 0, '2022-01-11');

INSERT INTO risk_list (id_no, id_type, name, list_type, reason, listed_date, expires_date) VALUES
  ('150627197508083319', 'RESIDENT_ID', '白建设', 'BLACKLIST', '失信被执行人（鄂尔多斯市中级人民法院，2024）', '2024-04-09', NULL);

-- 张晓梅's 个人住房贷款 on 东胜区 unit 150602001001GB00001F00010001:
-- outstanding 812,345.67 元 at 3.55 %, 还款日 the 18th; 正常.
-- 赵志强's loan is 45 days overdue (五级分类 关注): no consent to 带押过户.
INSERT INTO loan_contract (contract_no, cust_no, borrower_name, borrower_id_type, borrower_id_no, product,
  principal_fen, outstanding_fen, annual_rate_ppm, start_date, maturity_date, repay_day, classification,
  overdue_days, collateral_unit_no, collateral_cert_no, mortgage_proof_no, mortgage_rank, status) VALUES
  ('BOA-GRZF-2020-0618001', 'A150600001001', '张晓梅', 'RESIDENT_ID', '150621199003154522', '个人住房贷款',
   105000000, 81234567, 35500, '2020-06-18', '2050-06-18', 18, '正常', 0,
   '150602001001GB00001F00010001', '蒙(2020)鄂尔多斯市不动产权第0001234号', '蒙(2020)鄂尔多斯市不动产证明第0005678号', 1, 'ACTIVE'),
  ('BOA-GRZF-2019-1105002', 'A150600001002', '赵志强', 'RESIDENT_ID', '15060319880721321X', '个人住房贷款',
   68000000, 52100000, 36000, '2019-11-05', '2044-11-05', 5, '关注', 45,
   '150603002003GB00015F00020101', '蒙(2019)鄂尔多斯市不动产权第0004567号', '蒙(2019)鄂尔多斯市不动产证明第0003344号', 1, 'ACTIVE');
